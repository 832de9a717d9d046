"""Segment JSON read by Spark itself (`spark.read`, no conversion step) into the `messages`
relation and scored through the same stream stage as on DuckDB: the example data, the issue's
story, accounts from a stream alone, bad messages counted, and random streams equal to the
plain-Python reference of the rules (`leadscore.stream`). Marked `spark`."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.engine.batch import score_many
from leadscore.engine.batch.accounts import score_accounts
from leadscore.engine.batch.spark import inputs
from leadscore.engine.batch.spark import settings as spark_settings
from leadscore.engine.batch.spark_stream import read_messages
from leadscore.errors import RejectedRowsWarning
from leadscore.io.segment import message_row, message_table
from leadscore.model import load_models
from leadscore.stream import resolve
from tests.engine.outputs import assert_same_rows, rows_of
from tests.engine.test_stream import B2B, B2C, EXAMPLES, STORY, msg, write
from tests.engine.test_stream_reference import AS_OF, a_stream, present

pytestmark = pytest.mark.spark


def both(models: Any, events: Any, leads: Any, as_of: str, spark: Any) -> tuple[Any, Any]:
    duck = score_many(models, events, leads, as_of=as_of)
    on_spark = score_many(models, events, leads, as_of=as_of, engine="spark", spark=spark)
    assert on_spark.schema == duck.schema
    return duck, on_spark


def test_the_example_stream_scores_on_spark_as_on_duckdb(spark: Any) -> None:
    # with leads.jsonl: its identify calls make the leads (events.jsonl has none, so without
    # it both engines score no lead — no check at all)
    data = EXAMPLES / "data"
    models = load_models([B2B, B2C])
    duck, on_spark = both(models, str(data / "events.jsonl"), data / "leads.jsonl",
                          "2026-06-01T00:00:00Z", spark)
    assert_same_rows(rows_of(duck), rows_of(on_spark))
    assert on_spark.num_rows == 70      # as from the CSV files


def test_the_story_scores_on_spark_as_on_duckdb(spark: Any, tmp_path: Path) -> None:
    path = str(write(tmp_path / "story.jsonl", STORY))
    models = load_models([B2C])
    for as_of in ("2026-03-05T00:00:00Z", "2026-04-05T00:00:00Z"):
        duck, on_spark = both(models, path, None, as_of, spark)
        assert_same_rows(rows_of(duck), rows_of(on_spark))
        rows = {r["lead_id"]: r for r in on_spark.to_pylist()}
        assert set(rows) == {"c-1"}                    # the anonymous visit merged
        assert rows["c-1"]["disqualified"] is (as_of > "2026-04")   # student only later


def test_accounts_from_a_stream_alone_on_spark(spark: Any, tmp_path: Path) -> None:
    messages = [
        msg("identify", "2026-01-01T00:00:00Z", 1, userId="b-1",
            traits={"segment": "business", "seniority": "vp"}),
        msg("group", "2026-01-02T00:00:00Z", 2, userId="b-1", groupId="acme",
            traits={"industry": "software", "employees": 300}),
        msg("page", "2026-01-03T00:00:00Z", 3, userId="b-1", properties={"path": "/pricing"}),
        {"type": "identify", "userId": "b-2", "timestamp": "2026-01-04T00:00:00Z",
         "traits": {"segment": "business", "company": {"name": "Globex", "plan": "pro"}}},
    ]
    path = str(write(tmp_path / "s.jsonl", messages))
    models = load_models([B2B])
    as_of = "2026-02-01T00:00:00Z"
    duck = score_accounts(models, path, as_of=as_of)
    on_spark = score_accounts(models, path, as_of=as_of, engine="spark", spark=spark)
    assert [r["account_id"] for r in on_spark.to_pylist()] == ["Globex", "acme"]
    assert_same_rows(rows_of(duck, "account_id"), rows_of(on_spark, "account_id"))
    scores = {r["lead_id"]: r for r in both(models, path, None, as_of, spark)[1].to_pylist()}
    assert scores["b-1"]["fit"] == 15 + 10 + 15      # size, industry (group traits), vp



def test_a_stream_that_names_no_account_has_no_accounts_on_spark(spark: Any, tmp_path: Path
                                                                 ) -> None:
    # Spark 4's optimiser failed on this account plan ("key not found: account_id#…" in the
    # Union's constraints) until SESSION_CONF turned constraint propagation off
    path = str(write(tmp_path / "s.jsonl", [
        msg("identify", "2026-01-01T00:00:00Z", 1, userId="b-1", traits={"segment": "business"}),
        msg("page", "2026-01-03T00:00:00Z", 2, userId="b-1", properties={"path": "/pricing"})]))
    models = load_models([B2B])
    as_of = "2026-02-01T00:00:00Z"
    duck = score_accounts(models, path, as_of=as_of)
    on_spark = score_accounts(models, path, as_of=as_of, engine="spark", spark=spark)
    assert duck.num_rows == 0 and on_spark.num_rows == 0
    assert on_spark.schema == duck.schema

def test_bad_messages_are_left_out_and_counted_on_spark(spark: Any, tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    # `segment: consumer`: the model applies to consumers only (without it neither engine
    # scores c-1 — the cause of this test's first failure)
    good = [msg("identify", "2026-01-01T00:00:00Z", 1, userId="c-1",
                traits={"age": 30, "segment": "consumer"}),
            msg("page", "2026-01-02T00:00:00Z", 2, userId="c-1", properties={"path": "/a"})]
    bad = ['{"type": "track", "userId": "c-1", "timestamp": "2026-01-02T00:00:00Z"}',
           '{"type": "page", "timestamp": "2026-01-02T00:00:00Z"}', "not json",
           '{"type": "shout", "userId": "c-1"}']
    path.write_text("".join(json.dumps(m) + "\n" for m in good) + "\n".join(bad) + "\n")
    models = load_models([B2C])
    with pytest.warns(RejectedRowsWarning, match="4 bad message rows"):
        duck = score_many(models, str(path), as_of="2026-02-01T00:00:00Z")
    with pytest.warns(RejectedRowsWarning, match="4 bad message rows"):
        on_spark = score_many(models, str(path), as_of="2026-02-01T00:00:00Z",
                              engine="spark", spark=spark)
    assert [r["lead_id"] for r in on_spark.to_pylist()] == ["c-1"]
    assert_same_rows(rows_of(duck), rows_of(on_spark))


def test_the_cli_scores_a_stream_on_spark(spark: Any, tmp_path: Path) -> None:
    # both example models: 70 leads (the consumer model alone applies to 40 of them)
    out = tmp_path / "scores.csv"
    data = EXAMPLES / "data"
    result = CliRunner().invoke(app, [
        "score", "-m", str(B2B), "-m", str(B2C), "-e", str(data / "events.jsonl"), "-l",
        str(data / "leads.jsonl"), "--engine", "spark", "--master", "local[2]",
        "--as-of", "2026-06-01T00:00:00Z", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote 70 scores" in result.output
    duck = score_many(load_models([B2B, B2C]), str(data / "events.jsonl"), data / "leads.jsonl",
                      as_of="2026-06-01T00:00:00Z")
    written = {(r["model"], r["lead_id"]): r for r in csv.DictReader(out.open())}
    assert set(written) == {(r["model"], r["lead_id"]) for r in duck.to_pylist()}
    for row in duck.to_pylist():
        assert float(written[row["model"], row["lead_id"]]["score"]) == \
            pytest.approx(row["score"], abs=1e-6)


MIXED = [   # a field holding values of several JSON kinds across messages
    msg("identify", "2026-01-01T00:00:00Z", 1, userId="c-1", traits={
        "z": 0, "f": 1.5, "b": True, "s": "0", "n": 1, "l": 1, "bn": True,
        "company": {"name": "Acme", "size": 10}}),
    msg("identify", "2026-01-02T00:00:00Z", 2, userId="c-2", traits={
        "z": {"k": 1}, "f": {"k": "x"}, "b": {"k": False}, "s": {"k": {"m": 2}}, "n": "one",
        "l": [1, 2], "bn": 0, "company": {"name": "Acme", "size": {"min": 5}}}),
    msg("identify", "2026-01-03T00:00:00Z", 3, userId="c-3", traits={
        "z": None, "f": 2, "s": 3, "segment": "consumer"}),
    msg("track", "2026-01-04T00:00:00Z", 4, userId="c-1", event="e",
        properties={"p": 0, "q": "0"}),
    msg("track", "2026-01-05T00:00:00Z", 5, userId="c-2", event="e",
        properties={"p": {"k": 1}, "q": {"k": "1"}}),
    msg("group", "2026-01-06T00:00:00Z", 6, userId="c-3", groupId="g",
        traits={"tier": 1, "size": {"min": 1}}),
]
SPARK_TYPES = {"string": "STRING", "int64": "BIGINT", "double": "DOUBLE", "bool": "BOOLEAN",
               "timestamp[us, tz=UTC]": "TIMESTAMP"}


def test_mixed_kinds_of_a_field_are_typed_on_spark_as_on_duckdb(spark: Any, tmp_path: Path
                                                                ) -> None:
    # Spark infers text for a field that is a scalar in one message and an object in
    # another; the DuckDB reader flattens the objects and types the scalars (issue #15)
    path = write(tmp_path / "mixed.jsonl", MIXED)
    duck, _ = message_table(path, strict=True)
    found = read_messages(spark, [str(path)])
    assert found.rejected == 0
    expected = {f.name: SPARK_TYPES[str(f.type)] for f in duck.schema}
    assert {c: found.columns.get(c) for c in expected} == expected
    assert found.columns["traits.z"] == "BIGINT" and found.columns["traits.z.k"] == "BIGINT"
    rows = spark.table(f"`{found.view}`").toArrow().to_pylist()
    # Spark also has an `account.<x>` column (all NULL) per identify trait: left alone here
    assert all(r[c] is None for r in rows for c in set(found.columns) - set(expected))
    on_spark = sorted(({c: r[c] for c in expected} for r in rows), key=lambda r: r["message_id"])
    assert {(r["message_id"], c, v) for r in on_spark for c, v in r.items()} == {
        (r["message_id"], c, v) for r in duck.to_pylist() for c, v in r.items()}
    duck_scores, spark_scores = both(load_models([B2C]), str(path), None,
                                     "2026-02-01T00:00:00Z", spark)
    assert_same_rows(rows_of(duck_scores), rows_of(spark_scores))


# Found by the test below (seed 10278462076246404981188855043251023641): `y` is a number in
# one message and an object in another, and its `j` is null in every object (a VOID field of
# the variant): Spark gave the text 'null' where DuckDB gives no value.
# And a seed later (120725104950828639294171827626333127871): a company's `size` null in every
# identify, the group's a number: Spark read the account's size as text.
STREAMS = Path(__file__).parents[1] / "fixtures" / "streams"
NULL_IN_EVERY_OBJECT, VOID_ACCOUNT_TRAIT = (
    [json.loads(line) for line in (STREAMS / name).read_text().splitlines()]
    for name in ("null-in-every-object.jsonl", "void-account-trait.jsonl"))


# Was xfail until 2026-12-07: a trait that is a number in one message and an object in
# another (`z: 0`, `z: {k: 1}`) was text on Spark (issue #15; see the mixed-kinds test above).
@settings(max_examples=2, deadline=None, database=None,     # Spark: minutes each
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(stream=a_stream(), as_of=st.sampled_from(AS_OF))
@example(stream=NULL_IN_EVERY_OBJECT, as_of=1767614400000000)
@example(stream=VOID_ACCOUNT_TRAIT, as_of=1767700800000000)
def test_spark_reads_random_streams_as_the_reference_resolves_them(
        spark: Any, tmp_path: Path, stream: list[dict[str, Any]], as_of: int) -> None:
    expected = resolve([message_row(m) for m in stream], as_of)
    path = tmp_path / f"s{as_of}.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in stream))
    with spark_settings(spark), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = inputs(spark, str(path), None, None, as_of)
        assert found.leads is not None and found.accounts is not None
        events = [tuple(r) for r in spark.sql(
            f"SELECT lead_id, ts, type, event FROM `{found.events}`").collect()]
        leads = {r["lead_id"]: present(r) for r in
                 spark.table(f"`{found.leads}`").toArrow().to_pylist()}
        accounts = {r["account_id"]: present(r) for r in
                    spark.table(f"`{found.accounts}`").toArrow().to_pylist()}
    assert sorted(events) == sorted((e["lead_id"], e["ts"], e["type"], e["event"])
                                    for e in expected.events)
    assert leads == {lead: {"lead_id": lead, **profile}
                     for lead, profile in expected.leads.items()}
    assert accounts == {account: {"account_id": account, **traits}
                        for account, traits in expected.accounts.items()}
