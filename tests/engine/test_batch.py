"""The batch engine on hand-computed cases: one rule kind at a time, arithmetic in comments."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from leadscore.engine.batch import score_many
from leadscore.engine.sql.plan import PlanOptions, compile_plan
from leadscore.model import load_model
from leadscore.model.schema import Model
from leadscore.scores import OUTPUT_COLUMNS
from leadscore.timeutil import US_PER_DAY, parse_timestamp

AS_OF = "2026-03-10T00:00:00Z"
T = parse_timestamp(AS_OF)
DAY = US_PER_DAY


def model(**raw: Any) -> Model:
    return Model.model_validate({"name": "m", **raw})


def events(*rows: dict[str, Any]) -> pa.Table:
    columns = ["lead_id", "timestamp", "type", "event", "path", "email_id"]
    data = {c: [r.get(c) for r in rows] for c in columns}
    return pa.table({
        "lead_id": pa.array(data["lead_id"], pa.string()),
        "timestamp": pa.array([parse_timestamp(v) for v in data["timestamp"]], pa.int64())
        .cast(pa.timestamp("us", tz="UTC")),
        "type": pa.array([r.get("type", "track") for r in rows], pa.string()),
        "event": pa.array(data["event"], pa.string()),
        "path": pa.array(data["path"], pa.string()),
        "email_id": pa.array(data["email_id"], pa.string()),
    })


def track(name: str, at: int | str, lead: str = "a", **extra: Any) -> dict[str, Any]:
    return {"lead_id": lead, "timestamp": at, "event": name, **extra}


def page(path: str, at: int | str, lead: str = "a") -> dict[str, Any]:
    return {"lead_id": lead, "timestamp": at, "type": "page", "path": path}


def score(m: Model, table: pa.Table, leads: pa.Table | None = None,
          as_of: str = AS_OF) -> dict[str, dict[str, Any]]:
    out = score_many(m, table, leads, as_of=as_of)
    assert tuple(out.column_names) == (*OUTPUT_COLUMNS, "interests")
    return {row["lead_id"]: row for row in out.to_pylist()}


def engagement_of(rule: dict[str, Any], *rows: dict[str, Any], timezone: str = "UTC",
                  **raw: Any) -> float:
    m = model(engagement={"rules": [{"name": "r", **rule}], **raw}, timezone=timezone)
    return float(score(m, events(*rows))["a"]["engagement"])


def test_decay_halves_points_every_half_life() -> None:
    # 10 · 2^(−30/30) = 5; 10 · 2^(−15/30) = 7.0711
    got = engagement_of({"event": "X", "points": 10}, track("X", T - 30 * DAY),
                        track("X", T - 15 * DAY), decay={"half_life_days": 30})
    assert got == pytest.approx(5 + 10 * 2 ** -0.5)


def test_rule_without_decay_and_events_after_as_of() -> None:
    # decay: false → 4 + 4; the event after as_of is not seen
    got = engagement_of({"event": "X", "points": 4, "decay": False}, track("X", T - 40 * DAY),
                        track("X", T - DAY), track("X", T + DAY), decay={"half_life_days": 1})
    assert got == 8


def test_once_counts_only_the_most_recent() -> None:
    # the latest of three, 1 day old: 12 · 2^(−1/2) = 8.4853
    got = engagement_of({"event": "X", "points": 12, "limit": "once",
                         "decay": {"half_life_days": 2}},
                        track("X", T - 5 * DAY), track("X", T - 3 * DAY), track("X", T - DAY))
    assert got == pytest.approx(12 * 2 ** -0.5)


def test_daily_uses_the_model_time_zone() -> None:
    # 22:30Z and 23:30Z on 1 March: one UTC day, but two Berlin days (23:30 and 00:30 local)
    rows = (track("X", "2026-03-01T22:30:00Z"), track("X", "2026-03-01T23:30:00Z"))
    rule = {"event": "X", "points": 3, "limit": "daily"}
    assert engagement_of(rule, *rows) == 3
    assert engagement_of(rule, *rows, timezone="Europe/Berlin") == 6


def test_weekly_weeks_start_on_monday() -> None:
    # Sun 1 March and Mon 2 March are two ISO weeks; Mon 2 and Sun 8 March are one
    rule = {"event": "X", "points": 5, "limit": "weekly"}
    assert engagement_of(rule, track("X", "2026-03-01T12:00:00Z"),
                         track("X", "2026-03-02T12:00:00Z")) == 10
    assert engagement_of(rule, track("X", "2026-03-02T12:00:00Z"),
                         track("X", "2026-03-08T12:00:00Z")) == 5


def test_daily_counts_the_most_recent_event_of_the_day() -> None:
    # two events on 9 March (UTC), the later one 6 h before as_of: 8 · 2^(−0.25) = 6.7272
    got = engagement_of({"event": "X", "points": 8, "limit": "daily"},
                        track("X", T - 20 * 3600 * 1_000_000), track("X", T - 6 * 3600 * 1_000_000),
                        decay={"half_life_days": 1})
    assert got == pytest.approx(8 * 2 ** -0.25)


def test_distinct_one_per_value_and_one_group_without_value() -> None:
    # e1, e1, e2, (none), (none) → 3 groups · 2 = 6
    rule = {"event": "Opened", "points": 2, "distinct": "properties.email_id"}
    got = engagement_of(rule, track("Opened", T - DAY, email_id="e1"),
                        track("Opened", T - 2 * DAY, email_id="e1"),
                        track("Opened", T - DAY, email_id="e2"), track("Opened", T - DAY),
                        track("Opened", T - 3 * DAY))
    assert got == 6


def test_cap_bounds_positive_and_negative_totals() -> None:
    # 5 · 5 = 25 → capped at 15; −10 · 3 = −30 → −15
    assert engagement_of({"event": "X", "points": 5, "cap": 15},
                         *(track("X", T - i * DAY) for i in range(1, 6))) == 15
    assert engagement_of({"event": "X", "points": -10, "cap": 15},
                         *(track("X", T - i * DAY) for i in range(1, 4))) == -15


def test_page_globs_match_the_path_and_not_track_events() -> None:
    # /products/paper/a4 and /products/ match /products/*; /productsX and a track event do not
    got = engagement_of({"page": "/products/*", "points": 1},
                        page("/products/paper/a4", T - DAY), page("/products/", T - DAY),
                        page("/productsX", T - DAY), track("/products/x", T - DAY))
    assert got == 2


def test_fit_grade_temperature_and_mql() -> None:
    m = model(
        fit=[{"name": "age", "attribute": "age",
              "bands": [{"range": [25, 44], "points": 10}, {"gte": 18, "points": 4}]},
             {"name": "mail", "when": {"email": {"exists": True}}, "points": 25},
             {"name": "student", "when": {"job": "student"}, "disqualify": "student"},
             {"name": "rival", "when": {"email": {"domain_in": ["rival.example"]}},
              "disqualify": "competitor"}],
        engagement={"rules": [{"name": "x", "event": "X", "points": 20}]},
        grades={"A": 30, "B": 20, "C": 10}, temperature={"hot": 40, "warm": 15},
        thresholds={"mql": 30, "mql_requires_grade": "B"})
    leads = pa.table({"lead_id": ["a", "b", "c", "d"], "age": [30, 50, 30, None],
                      "email": ["a@x.org", "b@rival.example", None, "d@x.org"],
                      "job": [None, "student", None, None]})
    got = score(m, events(track("X", T - DAY, "a"), track("X", T - DAY, "c")), leads)
    # a: fit 10 + 25 = 35 → A; engagement 20 → warm; score 55 ≥ 30 → mql, stage mql
    assert (got["a"]["fit"], got["a"]["grade"], got["a"]["temperature"], got["a"]["mql"],
            got["a"]["stage"]) == (35, "A", "warm", True, "mql")
    # b: band 2 (4) + mail 25 = 29; both disqualifiers match: the first in file order wins
    assert (got["b"]["fit"], got["b"]["disqualify_reason"], got["b"]["temperature"],
            got["b"]["mql"]) == (29, "student", "dead", False)
    # c: fit 10 → C; score 30 ≥ 30 but grade C is below B → not an MQL
    assert (got["c"]["grade"], got["c"]["score"], got["c"]["mql"]) == ("C", 30, False)
    # d: no events, still scored from the leads table: fit 25 → B, cold
    assert (got["d"]["engagement"], got["d"]["grade"], got["d"]["temperature"]) == (0, "B",
                                                                                     "cold")


def test_lifecycle_back_rules_purchases_and_tenure() -> None:
    m = model(lifecycle=[
        {"stage": "subscriber", "on": {"event": "Subscribed"}},
        {"stage": "customer", "on": {"event": "Order"}},
        {"stage": "lead", "on": {"event": "Cancelled"}, "back": True},
        {"stage": "advocate", "on": {"event": "Review"}},
        {"stage": "lead", "when": {"email": {"exists": True}}},
    ])
    got = score(m, events(
        # a: order (day −10), cancelled (day −5), subscribed after (day −2) → lead
        track("Order", T - 10 * DAY, "a"), track("Cancelled", T - 5 * DAY, "a"),
        track("Subscribed", T - 2 * DAY, "a"),
        # b: two orders, the first 20 days ago, then a review → advocate
        track("Order", T - 20 * DAY, "b"), track("Order", T - 4 * DAY, "b"),
        track("Review", T - DAY, "b"),
        # c: subscribed only → subscriber
        track("Subscribed", T - DAY, "c")))
    assert got["a"]["stage"] == "lead" and got["a"]["purchases"] == 1
    assert got["b"]["stage"] == "advocate" and got["b"]["purchases"] == 2
    assert got["b"]["tenure_days"] == 20
    assert parse_timestamp(got["b"]["customer_since"]) == T - 20 * DAY
    assert got["c"]["stage"] == "subscriber" and got["c"]["customer_since"] is None


def test_which_leads_get_a_row() -> None:
    m = model(applies_to={"traits.country": {"ne": "FR"}},
              engagement={"rules": [{"name": "x", "event": "X", "points": 1}]})
    leads = pa.table({"lead_id": ["de", "fr", "quiet"], "country": ["DE", "FR", "DE"]})
    got = score(m, events(track("X", T - DAY, "de"), track("X", T - DAY, "fr"),
                          track("X", T - DAY, "anon"), track("X", T + DAY, "future")), leads)
    # fr is not selected; anon (events only, no traits: `ne` on a missing value fails) neither;
    # "future" has no event at or before as_of
    assert sorted(got) == ["de", "quiet"]
    m2 = model(engagement={"rules": [{"name": "x", "event": "X", "points": 1}]})
    assert sorted(score(m2, events(track("X", T - DAY, "anon")), leads)) == [
        "anon", "de", "fr", "quiet"]


def test_several_models_sorted_by_model_then_lead() -> None:
    a, b = model(name="zeta"), model(name="alpha")
    out = score_many([a, b], events(track("X", T - DAY, "y"), track("X", T - DAY, "x")),
                     as_of=AS_OF)
    assert list(zip(out["model"].to_pylist(), out["lead_id"].to_pylist(), strict=True)) == [
        ("alpha", "x"), ("alpha", "y"), ("zeta", "x"), ("zeta", "y")]
    assert out.schema.field("as_of").type == pa.timestamp("us", tz="UTC")


def test_the_design_example() -> None:
    # 3·2^(−8.625/30) + 20·2^(−0.2917/30) = 22.32 (examples/b2c-art-supplies.yaml, tests[0])
    m = load_model("examples/b2c-art-supplies.yaml")
    leads = pa.table({"lead_id": ["ann"], "email": ["ann@example.org"],
                      "segment": ["consumer"]})
    got = score(m, events(track("Newsletter Subscribed", "2026-05-01T09:00:00Z", "ann"),
                          page("/stores/hamburg", "2026-05-09T17:00:00Z", "ann")),
                leads, as_of="2026-05-10T00:00:00Z")["ann"]
    assert got["engagement"] == pytest.approx(22.32, abs=0.01)
    assert (got["temperature"], got["mql"]) == ("warm", False)


def test_the_plan_renders_for_spark() -> None:
    m = load_model("benchmarks/model-17.yaml").model_copy(update={"timezone": "Europe/Berlin"})
    columns = {"lead_id": "VARCHAR", "ts": "BIGINT", "type": "VARCHAR", "event": "VARCHAR",
               "path": "VARCHAR", "properties.email_id": "VARCHAR", "properties.topic": "VARCHAR"}
    leads = {"lead_id": "VARCHAR", "traits.email": "VARCHAR"}
    spark = compile_plan(m, columns, leads, T, options=PlanOptions(dialect="spark")).sql(
        dialect="spark")
    assert "unix_micros" in spark.lower()
    assert "epoch_us" not in spark.lower() and "MATERIALIZED" not in spark
    duck = compile_plan(m, columns, leads, T).sql(dialect="duckdb")
    assert "epoch_us" in duck.lower()
    assert "30.0" not in duck and "30.0" not in spark


def test_hash_lead_keys_fall_back_to_lead_id_on_a_collision(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The bucket GROUP BY keys leads by a hash of lead_id; two leads sharing a key would share
    # buckets. With a "hash" that collides on purpose (the length), the result must not change.
    m = model(engagement={"rules": [
        {"name": "d", "event": "X", "points": 10, "limit": "daily"},
        {"name": "o", "event": "X", "points": 3, "limit": "once", "distinct": "properties.k"}]})
    rows = [track("X", T - DAY, "aa", k="1"), track("X", T - DAY + 60_000_000, "bb", k="1"),
            track("X", T - 2 * DAY, "bb", k="2")]
    table = events(*rows).append_column("k", pa.array([r["k"] for r in rows]))
    honest = score(m, table)
    from leadscore.engine.sql.dialects import DuckDB
    monkeypatch.setattr(DuckDB, "HASH", "length")
    assert score(m, table) == honest
    # no decay: aa 10 (its day) + 3 (k=1); bb 10 + 10 (two days) + 3 + 3 (k=1, k=2)
    assert (honest["aa"]["engagement"], honest["bb"]["engagement"]) == (13, 26)


def test_the_plan_without_hash_keys_or_order_gives_the_same_scores() -> None:
    m = load_model("benchmarks/model-17.yaml")
    rows = [page("/pricing", T - DAY), page("/blog/a", T - 2 * DAY), page("/blog/a", T - DAY),
            track("Email Opened", T - 3 * DAY, email_id="e1"),
            track("Email Opened", T - 2 * DAY, email_id="e1"), track("Demo Requested", T - DAY),
            page("/docs/x", T - DAY, "b"), track("Form Submitted", T - DAY, "b")]
    import duckdb

    con = duckdb.connect()
    con.register("ev_in", events(*rows))
    from leadscore.io.readers import read_events

    read_events(con.sql("SELECT * FROM ev_in").to_arrow_table(), con, name="events")
    columns = {c: str(t) for c, t in zip(con.sql("SELECT * FROM events").columns,
                                         con.sql("SELECT * FROM events").types, strict=True)}
    results = []
    for options in (PlanOptions(leads_table=None),
                    PlanOptions(leads_table=None, lead_key="hash", order=False)):
        sql = compile_plan(m, columns, None, T, options=options).sql(dialect="duckdb")
        out = con.sql(sql).to_arrow_table().sort_by("lead_id")
        results.append(out.select(list(OUTPUT_COLUMNS)).to_pylist())
    assert results[0] == results[1]


def test_bad_rows_are_skipped_with_a_warning_that_names_them() -> None:
    """The Python API scores the good rows and says how many it skipped, and why the first
    was bad (the CLI writes them to a rejected-rows file); a clean input warns nothing."""
    import warnings

    from leadscore.errors import RejectedRowsWarning

    m = model(engagement={"rules": [{"name": "demo", "event": "Demo", "points": 10}]})
    table = events(track("Demo", T - DAY), track("Demo", T - DAY, lead=""),
                   track("Demo", T - DAY, lead="b"))
    with pytest.warns(RejectedRowsWarning, match=r"1 bad event row skipped \(the first: row 2, "
                                                 r"field 'lead_id': no lead_id\)"):
        scored = score(m, table)
    assert set(scored) == {"a", "b"}
    leads = pa.table({"lead_id": ["a", None]})
    with pytest.warns(RejectedRowsWarning, match="1 bad lead row skipped"):
        assert set(score(m, events(track("Demo", T - DAY)), leads)) == {"a"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        score(m, events(track("Demo", T - DAY)))
