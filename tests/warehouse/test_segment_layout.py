"""`leadscore compile --layout segment`: the tables Segment's and RudderStack's loaders write
(tracks, pages, identifies, groups, aliases and a table per track event) scored with the
stream semantics of issue #15 — equal to `score_many` on the same messages as a JSON lines
file, on DuckDB, on the real PostgreSQL and on Spark through `spark.sql`."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pyarrow.parquet as pq
import pytest
import sqlglot

from leadscore import load_model, score_many
from leadscore.engine.sql.segment_tables import (
    SegmentSchema,
    compile_segment_scores,
    declared_schema,
    event_table,
)
from leadscore.engine.sql.warehouse import declared_columns, render
from leadscore.io.databases import load_postgres
from leadscore.io.readers import read_messages
from leadscore.timeutil import parse_timestamp
from tests.conftest import postgres_url, require_postgres
from tests.engine.outputs import rows_of
from tests.warehouse.statement_size import examples_statement, inlined_size
from tests.warehouse.test_compile import (
    EXAMPLE_AS_OF,
    EXAMPLES,
    ROOT,
    assert_rows_equal,
    leadscore,
)
from tests.warehouse.test_postgres import plain, table_rows

STREAM = [ROOT / "examples" / "data" / "events.jsonl", ROOT / "examples" / "data" / "leads.jsonl"]
# An anonymous visit merged by identify, an alias to a smaller userId, a later trait that
# disqualifies, a group giving an account, purchases before and after as_of.
MERGING = [
    {"type": "page", "anonymousId": "anon-1", "messageId": "m1",
     "timestamp": "2026-05-02T10:00:00Z", "properties": {"path": "/stores/berlin?ref=ad"}},
    {"type": "identify", "userId": "zed", "anonymousId": "anon-1", "messageId": "m2",
     "timestamp": "2026-05-03T10:00:00Z",
     "traits": {"segment": "consumer", "email": "zed@example.org", "age": 30}},
    {"type": "track", "userId": "zed", "messageId": "m3", "timestamp": "2026-05-04T10:00:00Z",
     "event": "Order Completed", "properties": {"revenue": 120.5}},
    {"type": "alias", "userId": "yan", "previousId": "zed", "messageId": "m4",
     "timestamp": "2026-05-05T10:00:00Z"},
    {"type": "identify", "userId": "zed", "messageId": "m5",
     "timestamp": "2026-05-06T10:00:00Z", "traits": {"occupation": "student"}},
    {"type": "group", "userId": "yan", "groupId": "acme", "messageId": "m6",
     "timestamp": "2026-05-07T10:00:00Z", "traits": {"industry": "software"}},
    {"type": "track", "userId": "yan", "messageId": "m7", "timestamp": "2026-06-05T10:00:00Z",
     "event": "Order Completed", "properties": {"revenue": 10}},
]


def loader_column(name: str) -> str:
    """A flattened message column as the loaders name it: `properties.a.b` → `a_b`."""
    return re.sub(r"[^a-z0-9_]+", "_", name.split(".", 1)[1].lower())


def loader_tables(con: duckdb.DuckDBPyConnection, files: list[Path], schema: str) -> None:
    """The messages of `files` as the loaders would write them into `schema`."""
    read_messages([str(f) for f in files], con, name="messages")
    columns = [c for c in con.sql("SELECT * FROM messages LIMIT 0").columns]
    con.sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    base = "message_id AS id, anonymous_id, user_id, \"timestamp\""

    def values(prefix: str, where: str) -> str:
        used = [c for c in columns if c.startswith(prefix) and con.sql(
            f'SELECT count("{c}") FROM messages WHERE {where}').fetchall()[0][0]]
        return "".join(f', "{c}" AS "{loader_column(c)}"' for c in used)

    con.sql(f"CREATE TABLE {schema}.tracks AS SELECT {base}, event FROM messages "
            "WHERE type = 'track'")
    for (event,) in con.sql("SELECT DISTINCT event FROM messages WHERE type = 'track'"
                            ).fetchall():
        where = f"type = 'track' AND event = '{event}'"
        con.sql(f"CREATE TABLE {schema}.{event_table(event)} AS SELECT {base}, event"
                f"{values('properties.', where)} FROM messages WHERE {where}")
    for table, kind, prefix, extra in (("pages", "page", "properties.", ", path"),
                                       ("identifies", "identify", "traits.", ""),
                                       ("groups", "group", "account.",
                                        ", account_id AS group_id")):
        where = f"type = '{kind}'"
        con.sql(f"CREATE TABLE {schema}.{table} AS SELECT {base}{extra}"
                f"{values(prefix, where)} FROM messages WHERE {where}")
    con.sql(f"CREATE TABLE {schema}.aliases AS SELECT {base}, previous_id FROM messages "
            "WHERE type = 'alias'")


def schema_of(con: duckdb.DuckDBPyConnection, schema: str) -> SegmentSchema:
    tables: dict[str, dict[str, str]] = {}
    for table, column, kind in con.sql(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            f"WHERE table_schema = '{schema}' ORDER BY table_name, ordinal_position"
            ).fetchall():
        tables.setdefault(table, {})[column] = kind
    return SegmentSchema(schema, tables)


def expected(files: list[Path], models: list[Any], as_of: str) -> dict[Any, Any]:
    scores = score_many(models, str(files[0]), str(files[1]) if len(files) > 1 else None,
                        as_of=as_of)
    return rows_of(scores.drop_columns(["interests"]))


@pytest.fixture
def streams(tmp_path: Path) -> list[tuple[list[Path], str]]:
    merging = tmp_path / "merging.jsonl"
    merging.write_text("".join(json.dumps(m) + "\n" for m in MERGING))
    return [(STREAM, EXAMPLE_AS_OF), ([merging], "2026-06-01T00:00:00Z")]


def test_segment_tables_on_duckdb_equal_score_many(streams: list[Any]) -> None:
    models = [load_model(p) for p in EXAMPLES]
    for files, as_of in streams:
        con = duckdb.connect()
        con.sql("SET TimeZone = 'UTC'")
        loader_tables(con, files, "segment")
        sql = render(compile_segment_scores(models, schema_of(con, "segment"),
                                            as_of_us=parse_timestamp(as_of),
                                            dialect="duckdb"), "duckdb")
        assert_rows_equal(expected(files, models, as_of),
                          rows_of(con.sql(sql).to_arrow_table()))


def test_segment_tables_declared_by_the_models(streams: list[Any]) -> None:
    """Without a database to ask: the loader tables the models need, their columns."""
    models = [load_model(p) for p in EXAMPLES]
    events, leads = declared_columns(models)
    declared = declared_schema("segment", models, leads, events)
    assert {"tracks", "pages", "identifies", "groups", "aliases"} <= set(declared.tables)
    assert "revenue" in declared.tables[event_table("Order Completed")]
    assert "email" in declared.tables["identifies"]
    for dialect in ("duckdb", "postgres", "spark", "snowflake", "bigquery", "redshift"):
        sql = render(compile_segment_scores(models, declared, as_of_us=None,
                                            dialect=dialect), dialect)
        assert len(sqlglot.parse(sql, read=dialect)) == 1


@contextmanager
def loader_schema_in_postgres(files: list[Path]) -> Iterator[tuple[str, SegmentSchema]]:
    """The messages of `files` as the loaders would write them, in a fresh PostgreSQL
    schema (dropped afterwards): its name and tables."""
    require_postgres()
    schema = f"seg_{uuid.uuid4().hex[:10]}"
    con = duckdb.connect()
    con.sql("SET TimeZone = 'UTC'")
    loader_tables(con, files, "segment")
    source = schema_of(con, "segment")
    with psycopg.connect(postgres_url(), autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    try:
        for table in source.tables:
            load_postgres(postgres_url(), f"{schema}.{table}",
                          con.sql(f"SELECT * FROM segment.{table}").to_arrow_table())
        yield schema, SegmentSchema(schema, source.tables)
    finally:
        with psycopg.connect(postgres_url(), autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.postgres
def test_segment_tables_in_postgres_equal_score_many(streams: list[Any]) -> None:
    models = [load_model(p) for p in EXAMPLES]
    for files, as_of in streams:
        with loader_schema_in_postgres(files) as (_, source):
            sql = render(compile_segment_scores(
                models, source, as_of_us=parse_timestamp(as_of), dialect="postgres"),
                "postgres")
            with psycopg.connect(postgres_url()) as connection:
                cursor = connection.execute(sql)
                names = [d.name for d in cursor.description]
                rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
        got = {(r["model"], r["lead_id"]): {k: parse_timestamp(v) if k in (
            "customer_since", "as_of") and v is not None else v for k, v in r.items()}
            for r in rows}
        assert_rows_equal(expected(files, models, as_of), got)


@pytest.mark.postgres
def test_score_engine_postgres_layout_segment(streams: list[Any], tmp_path: Path) -> None:
    """`leadscore score --engine postgres --layout segment --schema S`: the loader tables
    scored in the database, into its table and into a file, equal to score_many."""
    models = [load_model(p) for p in EXAMPLES]
    args = ["score", "--engine", "postgres", "--db", postgres_url(),
            *(a for m in EXAMPLES for a in ("-m", str(m)))]
    for files, as_of in streams:
        with loader_schema_in_postgres(files) as (schema, _):
            done = leadscore(*args, "--layout", "segment", "--schema", schema, "--as-of",
                             as_of, "--out", f"{schema}.scores")
            assert "no export" in done.stdout + done.stderr
            into_table = plain(table_rows(schema, "scores"))
            out = tmp_path / "scores.parquet"
            leadscore(*args, "--layout", "segment", "--schema", schema, "--as-of", as_of,
                      "--out", str(out))
            into_file = rows_of(pq.read_table(out))
        want = expected(files, models, as_of)
        assert_rows_equal(want, into_table)
        assert_rows_equal(want, into_file)
    both = leadscore(*args, "--layout", "segment", "--schema", "s", "--events", "s.events",
                     "--out", "x", check=False)
    assert both.returncode != 0 and "not --events / --leads" in both.stderr
    no_schema = leadscore(*args, "--layout", "segment", "--out", "x", check=False)
    assert no_schema.returncode != 0 and "--schema SCHEMA" in no_schema.stderr
    nothing = leadscore(*args, "--layout", "segment", "--schema", "nothing_here", "--out",
                        "x", check=False)
    assert nothing.returncode != 0 and "schema 'nothing_here' holds no table" in \
        nothing.stderr
    on_duckdb = leadscore("score", "-m", str(EXAMPLES[0]), "--layout", "segment",
                          "--schema", "s", "--out", str(tmp_path / "x.csv"), check=False)
    assert on_duckdb.returncode != 0 and "with --engine postgres" in on_duckdb.stderr


def test_compile_cli_layout_segment(tmp_path: Path) -> None:
    """`leadscore compile --layout segment --schema S --db FILE`: the loader tables read from
    the database; run there, the scores equal score_many's on the JSON lines."""
    db = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    loader_tables(con, STREAM, "segment")
    con.close()
    out = tmp_path / "scores.sql"
    args = ["compile", *(a for m in EXAMPLES for a in ("-m", str(m))), "--dialect", "duckdb"]
    leadscore(*args, "--layout", "segment", "--schema", "segment", "--db", str(db),
              "--as-of", EXAMPLE_AS_OF, "--out", str(out))
    con = duckdb.connect(str(db), read_only=True)
    got = rows_of(con.sql(out.read_text()).to_arrow_table())
    con.close()
    models = [load_model(p) for p in EXAMPLES]
    assert_rows_equal(expected(STREAM, models, EXAMPLE_AS_OF), got)
    wrong = leadscore(*args, "--layout", "segment", "--events-table", "e", check=False)
    assert wrong.returncode != 0 and "--schema SCHEMA" in wrong.stderr
    empty = leadscore(*args, "--layout", "segment", "--schema", "nothing", "--db", str(db),
                      check=False)
    assert empty.returncode != 0 and "schema 'nothing' holds no table" in empty.stderr


def test_inlined_size_counts_every_reference() -> None:
    """The helper counts a statement as Spark optimises it: each CTE reference replaced by
    the CTE's definition, nested WITHs in their scope."""
    with_ctes = sqlglot.parse_one(
        "WITH a AS (SELECT x FROM t WHERE x > 1), b AS (SELECT x FROM a UNION ALL "
        "SELECT x FROM a) SELECT * FROM b JOIN (WITH c AS (SELECT x FROM b) SELECT x FROM c) "
        "AS d ON d.x = b.x")
    a = "(SELECT x FROM t WHERE x > 1)"
    b = f"(SELECT x FROM {a} UNION ALL SELECT x FROM {a})"
    inlined = sqlglot.parse_one(f"SELECT * FROM {b} JOIN (SELECT x FROM "
                                f"(SELECT x FROM {b})) AS d ON d.x = b.x")
    plain_size = sum(1 for _ in with_ctes.walk())
    assert inlined_size(with_ctes) > plain_size
    # the same as the statement written out by hand, up to the nodes a CTE's name and a
    # subquery wrapper add (a few per reference)
    assert abs(inlined_size(with_ctes) - sum(1 for _ in inlined.walk())) <= 3 * 7


def test_segment_statement_reads_each_step_once() -> None:
    """Spark inlines every CTE reference: a step read twice doubles everything under it.
    The examples' statement inlined to 2.85M nodes when the identities read the labels
    twice (and were read three times by the leads, twice by the events) and every label
    round read the edges; Spark's 2 GB test driver could not analyse it. Now each stream step
    reads the one before once, and the rounds the edges once in all."""
    seen: dict[str, int] = {}
    total = inlined_size(examples_statement(), None, seen)
    assert total < 200_000
    msg = seen["stream_msg"]
    assert seen["stream_labels"] < 2 * seen["stream_edges"]
    # the identities: the labels, and the messages for own ids, anonymous ids and claims
    assert seen["stream_ids"] < seen["stream_labels"] + 4 * msg
    assert seen["stream_events"] < seen["stream_ids"] + 2 * msg
    assert seen["stream_leads"] < seen["stream_ids"] + seen["stream_accounts"] + 2 * msg


@pytest.mark.spark
def test_segment_tables_on_spark_equal_score_many(spark: Any, streams: list[Any]) -> None:
    """The same statement for Spark, run by `spark.sql` over temp views of the loader
    tables (the session in UTC, as the Spark runner sets it), in the test session's 2 GB
    driver: Spark inlines every CTE reference, so this holds only while each step of the
    statement reads the ones before it once (`tests/warehouse/statement_size.py`)."""
    from leadscore.engine.batch.spark import settings

    models = [load_model(p) for p in EXAMPLES]
    for files, as_of in streams:
        con = duckdb.connect()
        con.sql("SET TimeZone = 'UTC'")
        loader_tables(con, files, "segment")
        source = schema_of(con, "segment")
        prefix = f"seg{uuid.uuid4().hex[:8]}_"
        for table in source.tables:
            frame = con.sql(f"SELECT * FROM segment.{table}").to_arrow_table()
            ddl = ", ".join(f"`{c}` {SPARK_TYPES.get(t, 'string')}"
                            for c, t in source.tables[table].items())
            data = spark.createDataFrame(frame.to_pandas()) if frame.num_rows else \
                spark.createDataFrame([], ddl)
            data.createOrReplaceTempView(prefix + table)
        views = SegmentSchema("", {prefix + t: c for t, c in source.tables.items()})
        try:
            with settings(spark):
                sql = render(compile_segment_scores(
                    models, _renamed(views, prefix), as_of_us=parse_timestamp(as_of),
                    dialect="spark"), "spark").rstrip().rstrip(";")
                got = rows_of(spark.sql(sql).toArrow())
        finally:
            for table in source.tables:
                spark.catalog.dropTempView(prefix + table)
        assert_rows_equal(expected(files, models, as_of), got)


SPARK_TYPES = {"VARCHAR": "string", "TIMESTAMP WITH TIME ZONE": "timestamp",
               "BIGINT": "bigint", "DOUBLE": "double", "BOOLEAN": "boolean", "INTEGER": "int"}


def _renamed(views: SegmentSchema, prefix: str) -> SegmentSchema:
    """Temp views named `<prefix><table>`: a schema whose tables carry the prefix."""
    return _Prefixed(prefix, {t.removeprefix(prefix): c for t, c in views.tables.items()})


class _Prefixed(SegmentSchema):
    def name(self, table: str) -> str:
        return self.schema + table
