"""The stream stage on DuckDB (issue #15): a Segment message history scored as of T — identity
links, point-in-time traits, accounts — through `score_many` and `score_accounts`."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import duckdb

from leadscore.engine.batch import score_many
from leadscore.engine.batch.accounts import score_accounts
from leadscore.engine.batch.inputs import canonical_inputs
from leadscore.engine.sql.stream import ROUNDS, label_rounds
from leadscore.io.readers import read_messages
from leadscore.model import load_models
from leadscore.timeutil import parse_timestamp

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
B2C = EXAMPLES / "b2c-art-supplies.yaml"
B2B = EXAMPLES / "b2b-software.yaml"


def write(path: Path, messages: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(m) + "\n" for m in messages))
    return path


def by_lead(table: Any) -> dict[str, dict[str, Any]]:
    return {row["lead_id"]: row for row in table.to_pylist()}


def stream_tables(messages: list[dict[str, Any]], tmp_path: Path, as_of: str
                  ) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]],
                             dict[str, dict[str, Any]]]:
    """(leads by id, events, accounts by id) of the stream stage as of `as_of`."""
    con = duckdb.connect()
    found = canonical_inputs(write(tmp_path / "s.jsonl", messages), None, con,
                             parse_timestamp(as_of))
    assert found.leads is not None and found.accounts is not None
    leads = {r["lead_id"]: r for r in con.sql(f'SELECT * FROM "{found.leads}"')
             .to_arrow_table().to_pylist()}
    events = con.sql(f'SELECT * FROM "{found.events}" ORDER BY ts, lead_id') \
        .to_arrow_table().to_pylist()
    accounts = {r["account_id"]: r for r in con.sql(f'SELECT * FROM "{found.accounts}"')
                .to_arrow_table().to_pylist()}
    return leads, events, accounts


def msg(kind: str, when: str | None, n: int, **fields: Any) -> dict[str, Any]:
    out = {"type": kind, "messageId": f"m{n:03d}", **fields}
    if when is not None:
        out["timestamp"] = when
    return out


# The story: an anonymous store visit, then an identify that links it and says
# `occupation: artist`, then page views; much later the person tells us they are a student.
STORY = [
    msg("page", "2026-03-01T10:00:00Z", 1, anonymousId="anon-1",
        properties={"path": "/store-locator"}),
    msg("identify", "2026-03-02T10:00:00Z", 2, userId="c-1", anonymousId="anon-1",
        traits={"segment": "consumer", "age": 30, "occupation": "artist"}),
    msg("page", "2026-03-03T10:00:00Z", 3, userId="c-1", properties={"path": "/products/a"}),
    msg("page", "2026-03-04T10:00:00Z", 4, userId="c-1", properties={"path": "/products/b"}),
    msg("identify", "2026-04-01T10:00:00Z", 5, userId="c-1",
        traits={"occupation": "student", "age": None}),
]


def test_identify_and_track_messages_score_without_a_leads_file(tmp_path: Path) -> None:
    scores = by_lead(score_many(load_models([B2C]), write(tmp_path / "s.jsonl", STORY),
                                as_of="2026-03-10T00:00:00Z"))
    assert list(scores) == ["c-1"]          # the anonymous visit is the person's, not a lead
    lead = scores["c-1"]
    assert lead["fit"] == 20                # age 30 (10) + artist (10), from the identify
    assert not lead["disqualified"]


def test_a_student_identify_disqualifies_from_then_on(tmp_path: Path) -> None:
    path = write(tmp_path / "s.jsonl", STORY)
    model = load_models([B2C])
    before = by_lead(score_many(model, path, as_of="2026-03-31T00:00:00Z"))["c-1"]
    after = by_lead(score_many(model, path, as_of="2026-04-02T00:00:00Z"))["c-1"]
    assert not before["disqualified"] and before["fit"] == 20
    assert after["disqualified"] and after["disqualify_reason"] == "student"
    # a null age does not erase the age set before: 10 points for age still
    leads, _, _ = stream_tables(STORY, tmp_path, "2026-04-02T00:00:00Z")
    assert leads["c-1"]["traits.age"] == 30
    assert leads["c-1"]["traits.occupation"] == "student"


def test_the_anonymous_history_counts_for_the_person(tmp_path: Path) -> None:
    leads, events, _ = stream_tables(STORY, tmp_path, "2026-03-10T00:00:00Z")
    assert set(leads) == {"c-1"}
    assert [e["lead_id"] for e in events] == ["c-1", "c-1", "c-1"]
    assert events[0]["path"] == "/store-locator"


def test_a_link_after_as_of_does_not_merge(tmp_path: Path) -> None:
    leads, events, _ = stream_tables(STORY, tmp_path, "2026-03-01T12:00:00Z")
    assert set(leads) == {"anon-1"}
    assert [e["lead_id"] for e in events] == ["anon-1"]


def test_an_anonymous_id_stays_with_its_first_claimant(tmp_path: Path) -> None:
    messages = [
        msg("page", "2026-01-01T00:00:00Z", 1, anonymousId="a", properties={"path": "/x"}),
        msg("identify", "2026-01-02T00:00:00Z", 2, userId="u-2", anonymousId="a"),
        msg("identify", "2026-01-03T00:00:00Z", 3, userId="u-1", anonymousId="a"),
        msg("track", "2026-01-04T00:00:00Z", 4, anonymousId="a", event="Clicked"),
    ]
    leads, events, _ = stream_tables(messages, tmp_path, "2026-02-01T00:00:00Z")
    assert set(leads) == {"u-1", "u-2"}       # u-1's later claim does not merge the two
    assert {e["lead_id"] for e in events} == {"u-2"}


def test_alias_chains_merge_transitively_to_the_smallest_own_user_id(tmp_path: Path) -> None:
    # a chain of 80 aliases: longer than one statement's unrolled rounds reach
    chain = [msg("alias", f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z", i,
                 userId=f"u{i + 1:03d}", previousId=f"u{i:03d}") for i in range(80)]
    chain.append(msg("track", "2026-01-02T00:00:00Z", 900, userId="u080", event="Bought"))
    chain.append(msg("track", "2026-01-02T00:00:00Z", 901, anonymousId="u050", event="Seen"))
    chain.append(msg("track", "2026-01-02T00:00:00Z", 902, anonymousId="zz", event="Seen"))
    leads, events, _ = stream_tables(chain, tmp_path, "2026-02-01T00:00:00Z")
    # u000 is only ever a previousId: it links, it does not name the lead
    assert set(leads) == {"u001", "zz"}
    assert sorted(e["lead_id"] for e in events) == ["u001", "u001", "zz"]


def test_an_aliased_anonymous_id_never_names_the_lead(tmp_path: Path) -> None:
    messages = [msg("page", "2026-01-01T00:00:00Z", 1, userId="u3", anonymousId="a0",
                    properties={"path": "/"}),
                msg("alias", "2026-01-02T00:00:00Z", 2, userId="u2", previousId="a0"),
                msg("track", "2026-01-03T00:00:00Z", 3, anonymousId="a0", event="E")]
    leads, events, _ = stream_tables(messages, tmp_path, "2026-02-01T00:00:00Z")
    assert set(leads) == {"u2", "u3"}
    assert {(e["lead_id"], e["type"]) for e in events} == {("u3", "page"), ("u2", "track")}


def test_an_anonymous_lead_whose_id_a_user_lead_has_gets_a_suffix(tmp_path: Path) -> None:
    messages = [msg("track", "2026-01-01T00:00:00Z", 1, userId="x", event="A"),
                msg("track", "2026-01-01T00:00:00Z", 2, anonymousId="x", event="B")]
    leads, events, _ = stream_tables(messages, tmp_path, "2026-02-01T00:00:00Z")
    assert set(leads) == {"x", "x#2"}
    assert {(e["lead_id"], e["event"]) for e in events} == {("x", "A"), ("x#2", "B")}


def test_duplicate_message_ids_count_once_the_earliest(tmp_path: Path) -> None:
    messages = [msg("track", "2026-01-02T00:00:00Z", 1, userId="u", event="Late"),
                msg("track", "2026-01-01T00:00:00Z", 1, userId="u", event="Early"),
                {"type": "track", "userId": "u", "event": "No id",
                 "timestamp": "2026-01-03T00:00:00Z"},
                {"type": "track", "userId": "u", "event": "No id",
                 "timestamp": "2026-01-03T00:00:00Z"}]
    _, events, _ = stream_tables(messages, tmp_path, "2026-02-01T00:00:00Z")
    assert [e["event"] for e in events] == ["Early", "No id"]


def test_group_calls_make_accounts_with_point_in_time_traits(tmp_path: Path) -> None:
    messages = [
        msg("identify", "2026-01-01T00:00:00Z", 1, userId="b-1",
            traits={"segment": "business", "email": "a@acme.example"}),
        msg("group", "2026-01-02T00:00:00Z", 2, userId="b-1", groupId="acme",
            traits={"industry": "software", "employees": 300}),
        msg("group", "2026-03-01T00:00:00Z", 3, userId="b-2", groupId="acme",
            traits={"employees": 9000, "industry": None}),
        msg("identify", "2026-01-05T00:00:00Z", 4, userId="b-3",
            traits={"company": {"name": "Globex", "industry": "fintech", "plan": "pro"}}),
    ]
    leads, _, accounts = stream_tables(messages, tmp_path, "2026-02-01T00:00:00Z")
    assert accounts["acme"]["account.employees"] == 300
    assert leads["b-1"]["account.id"] == "acme"
    assert leads["b-1"]["account.industry"] == "software"
    assert "b-2" not in leads                        # its only message is after as_of
    assert accounts["Globex"]["account.plan"] == "pro"
    assert accounts["Globex"]["account.name"] == "Globex"
    assert leads["b-3"]["account.industry"] == "fintech"
    leads, _, accounts = stream_tables(messages, tmp_path, "2026-04-01T00:00:00Z")
    assert accounts["acme"]["account.employees"] == 9000
    assert accounts["acme"]["account.industry"] == "software"     # a null does not erase
    assert leads["b-1"]["account.employees"] == 9000


def test_accounts_from_a_stream_alone(tmp_path: Path) -> None:
    messages = [
        msg("identify", "2026-01-01T00:00:00Z", 1, userId="b-1",
            traits={"segment": "business", "seniority": "vp"}),
        msg("group", "2026-01-02T00:00:00Z", 2, userId="b-1", groupId="acme",
            traits={"industry": "software", "employees": 300}),
        msg("page", "2026-01-03T00:00:00Z", 3, userId="b-1", properties={"path": "/pricing"}),
    ]
    path = write(tmp_path / "s.jsonl", messages)
    models = load_models([B2B])
    rows = score_accounts(models, path, as_of="2026-02-01T00:00:00Z").to_pylist()
    assert [r["account_id"] for r in rows] == ["acme"]
    scores = by_lead(score_many(models, path, as_of="2026-02-01T00:00:00Z"))
    assert scores["b-1"]["fit"] == 15 + 10 + 15      # size, industry (group traits), vp


def test_a_leads_table_is_the_base_and_the_stream_wins_per_key(tmp_path: Path) -> None:
    leads_csv = tmp_path / "leads.csv"
    leads_csv.write_text("lead_id,segment,age,occupation\nc-1,consumer,50,artist\n"
                         "c-9,consumer,30,designer\n")
    stream = [msg("identify", "2026-01-01T00:00:00Z", 1, userId="c-1",
                  traits={"occupation": "student"}),
              msg("identify", "2026-05-01T00:00:00Z", 2, userId="c-9",
                  traits={"occupation": "student"})]
    scores = by_lead(score_many(load_models([B2C]), write(tmp_path / "s.jsonl", stream),
                                leads_csv, as_of="2026-02-01T00:00:00Z"))
    assert scores["c-1"]["disqualified"]               # the stream's occupation wins
    assert scores["c-1"]["fit"] == 6                   # the table's age (50) holds
    assert not scores["c-9"]["disqualified"]           # its identify is after as_of
    assert scores["c-9"]["fit"] == 20


def test_example_jsonl_and_csv_give_the_same_scores() -> None:
    models = load_models([B2B, B2C])
    as_of = "2026-06-01T00:00:00Z"
    data = EXAMPLES / "data"
    from_json = score_many(models, data / "events.jsonl", data / "leads.jsonl", as_of=as_of)
    from_csv = score_many(models, data / "events.csv", data / "leads.csv", as_of=as_of)
    assert from_json.num_rows == from_csv.num_rows == 70
    assert from_json.to_pylist() == from_csv.to_pylist()


def test_bad_messages_are_counted_by_line(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps(msg("track", "2026-01-01T00:00:00Z", 1, userId="u", event="A"))
                    + "\nnot json\n" + json.dumps({"type": "group", "userId": "u"}) + "\n"
                    + json.dumps({"type": "alias", "userId": "u"}) + "\n"
                    + json.dumps({"type": "track", "userId": "u", "event": "E"}) + "\n")
    con = duckdb.connect()
    report = read_messages(path, con, name="m")
    assert report.rows == 1 and report.rejected == 4
    assert [(r["row"], r["field"]) for r in report.rejected_rows.to_pylist()] == [
        (2, None), (3, "groupId"), (4, "previousId"), (5, "timestamp")]


def test_explain_from_a_stream_file_and_a_lead_id(tmp_path: Path) -> None:
    import leadscore

    path = write(tmp_path / "s.jsonl", STORY)
    score = leadscore.explain(B2C, path, "c-1", as_of="2026-03-10T00:00:00Z")
    batch = by_lead(score_many(load_models([B2C]), path, as_of="2026-03-10T00:00:00Z"))["c-1"]
    assert score.lead_id == "c-1"
    assert score.fit == batch["fit"] == 20
    assert round(score.score, 6) == round(batch["score"], 6)
    assert round(sum(r.points for r in score.reasons), 6) == round(score.score, 6)
    later = leadscore.explain(B2C, path, "c-1", as_of="2026-04-02T00:00:00Z")
    assert later.disqualified and later.disqualify_reason == "student"


def test_explain_from_an_events_table_and_leads_file() -> None:
    import leadscore

    data = EXAMPLES / "data"
    as_of = "2026-06-01T00:00:00Z"
    batch = by_lead(score_many(load_models([B2C]), data / "events.csv", data / "leads.csv",
                               as_of=as_of))
    lead = next(k for k, v in batch.items() if v["engagement"] > 0 and v["fit"] > 0)
    score = leadscore.explain(str(B2C), str(data / "events.csv"), lead, as_of=as_of,
                              leads=data / "leads.csv")
    assert round(score.score, 6) == round(batch[lead]["score"], 6)


def test_explain_from_messages_in_memory() -> None:
    import leadscore

    score = leadscore.explain(load_models([B2C])[0], STORY, as_of="2026-04-02T00:00:00Z")
    assert score.lead_id == "c-1" and score.disqualified


def test_segments_read_a_stream_as_of_their_time(tmp_path: Path) -> None:
    from leadscore.segments import load_segment
    from leadscore.segments.batch import segment_many

    segment = load_segment("s.yaml", text="name: artists\nmodel: b2c-art-supplies\n"
                           "when: {traits.occupation: {eq: artist}}\n")
    path = write(tmp_path / "s.jsonl", STORY)
    models = load_models([B2C])
    before = segment_many([segment], models, path, as_of="2026-03-10T00:00:00Z").to_pylist()
    after = segment_many([segment], models, path, as_of="2026-04-10T00:00:00Z").to_pylist()
    assert [r["lead_id"] for r in before] == ["c-1"]
    assert after == []                               # a student by then


def test_evaluate_inputs_know_at_the_cut_off_what_was_known_then(tmp_path: Path) -> None:
    from leadscore.learn.inputs import open_inputs

    stream = [*STORY,
              msg("page", "2026-03-05T10:00:00Z", 6, anonymousId="anon-9",
                  properties={"path": "/products/c"}),
              msg("identify", "2026-04-05T10:00:00Z", 7, userId="c-9", anonymousId="anon-9"),
              msg("track", "2026-04-06T10:00:00Z", 8, userId="c-9", event="Order Completed")]
    data = open_inputs(write(tmp_path / "s.jsonl", stream), None, "event:Order Completed")
    cut = parse_timestamp("2026-03-20T00:00:00Z")
    _, leads = data.at(cut)
    assert leads is not None
    known = {r[0]: r[1] for r in data.con.sql(
        f'SELECT lead_id, "traits.occupation" FROM "{leads}"').fetchall()}
    assert known == {"c-1": "artist", "anon-9": None}     # not yet a student, not yet c-9
    data.population(cut, "pop")
    assert sorted(r[0] for r in data.con.sql("SELECT lead_id FROM pop").fetchall()) == [
        "anon-9", "c-1"]
    # the outcomes by the identities as finally known: c-9 (once anon-9) converted ...
    converted = data.con.sql(f'SELECT lead_id FROM "{data.outcomes.table}"').fetchall()
    assert converted == [("c-9",)]
    # ... so the anonymous lead of the cut-off is labelled as having converted
    data.labels("pop", cut, None, "labels")
    assert sorted(data.con.sql("SELECT lead_id, converted FROM labels").fetchall()) == [
        ("anon-9", 1), ("c-1", 0)]


def test_a_nested_trait_is_replaced_whole_by_the_latest_value_setting_it(tmp_path: Path) -> None:
    messages = [msg("identify", "2026-01-01T00:00:00Z", 1, userId="u",
                    traits={"x": {"k": 0, "j": 2}, "y": 1}),
                msg("identify", "2026-01-02T00:00:00Z", 2, userId="u",
                    traits={"x": {"k": 1, "j": None}, "y": None}),
                msg("identify", "2026-01-03T00:00:00Z", 3, userId="u",
                    traits={"x": {"k": None}})]            # sets nothing of x
    leads, _, _ = stream_tables(messages, tmp_path, "2026-02-01T00:00:00Z")
    assert leads["u"]["traits.x.k"] == 1
    assert leads["u"]["traits.x.j"] is None     # x's latest value has no j
    assert leads["u"]["traits.y"] == 1          # a null does not erase


def test_one_statement_of_label_rounds_joins_a_chain_of_32_links() -> None:
    """The compiled statement has no loop: its ROUNDS unrolled rounds (pointer jumping)
    label every node of a 32-link alias chain whose names rise or fall along it with the
    chain's smallest; 64 links need more. (Names in other orders along a chain can need more
    rounds: a 33-node chain with its smallest in the middle and the names rising away from
    it on both sides is not joined in 5 rounds — as before the rounds moved onto the edge
    rows, which changed no label.)"""
    assert 2 ** ROUNDS == 32
    con = duckdb.connect()
    for order in ("rising", "falling"):
        names = [f"n{i:03d}" for i in range(33)]
        if order == "falling":
            names.reverse()
        con.sql("CREATE OR REPLACE TABLE chain_edges (src VARCHAR, dst VARCHAR)")
        con.executemany("INSERT INTO chain_edges VALUES (?, ?)",
                        [p for a, b in itertools.pairwise(names) for p in
                         ((a, b), (b, a))])
        labels = con.sql(label_rounds("chain_edges", None).sql(dialect="duckdb")).fetchall()
        assert len(labels) == 33 and {label for _, label in labels} == {"n000"}, order
    names = [f"n{i:03d}" for i in range(65)][::-1]
    con.sql("CREATE OR REPLACE TABLE chain_edges (src VARCHAR, dst VARCHAR)")
    con.executemany("INSERT INTO chain_edges VALUES (?, ?)",
                    [p for a, b in itertools.pairwise(names) for p in
                     ((a, b), (b, a))])
    labels = con.sql(label_rounds("chain_edges", None).sql(dialect="duckdb")).fetchall()
    assert len({label for _, label in labels}) > 1
