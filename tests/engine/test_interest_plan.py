"""The interest plan reads the events once, whatever the number of interest rules, and its
weights are exact sums: the same to the last bit run after run (a parallel sum of doubles
depends on the order rows arrive in)."""

from __future__ import annotations

import pyarrow as pa
from sqlglot import exp

from leadscore.engine.batch import connect, score_many
from leadscore.engine.sql.interest_plan import compile_interest_plan
from leadscore.model.schema import Model
from leadscore.timeutil import parse_timestamp

AS_OF = parse_timestamp("2026-05-01T00:00:00Z")
MODEL = Model.model_validate({"name": "m", "engagement": {"decay": {"half_life_days": 7.3}},
                              "interests": [
    {"topic": "paint", "page": "/paint/*", "points": 1.7},
    {"topic": "{properties.topic}", "event": "Clicked", "points": 3.1, "limit": "daily"},
    {"topic": "{properties.topic}", "event": "Opened", "points": 0.3, "cap": 40},
    {"topic": "t-{properties.topic}", "event": "Clicked", "points": 2.9,
     "distinct": "properties.topic"}]})
COLUMNS = {"lead_id": "VARCHAR", "ts": "BIGINT", "type": "VARCHAR", "event": "VARCHAR",
           "path": "VARCHAR", "properties.topic": "VARCHAR"}


def test_the_events_are_read_once() -> None:
    plan = compile_interest_plan(MODEL, COLUMNS, AS_OF, events_table="events")
    assert plan is not None
    reads = [t for t in plan.find_all(exp.Table) if t.name == "events"]
    assert len(reads) == 1


def test_weights_are_the_same_run_after_run() -> None:
    n = 300_000
    kinds = ["Clicked", "Opened", None]
    events = pa.table({
        "lead_id": [f"l{i % 50}" for i in range(n)],
        "timestamp": pa.array([AS_OF - (i * 7919 % (60 * 1440)) * 60_000_000 for i in range(n)],
                              pa.int64()).cast(pa.timestamp("us", "UTC")),
        "type": ["page" if kinds[i % 3] is None else "track" for i in range(n)],
        "event": [kinds[i % 3] for i in range(n)],
        "path": ["/paint/oil" if kinds[i % 3] is None else None for i in range(n)],
        "topic": [f"t{i % 7}" for i in range(n)],
    })
    con = connect(threads=2)
    try:
        runs = {tuple((r["lead_id"], tuple((i["topic"], i["weight"]) for i in r["interests"]))
                      for r in score_many(MODEL, events, as_of=AS_OF, con=con).to_pylist())
                for _ in range(4)}
    finally:
        con.close()
    assert len(runs) == 1
    (profiles,) = runs
    assert all(len(p) == 10 for _, p in profiles)    # 1 + 7 + 7 topics, the top 10


def test_a_topic_decayed_below_min_weight_has_left_the_profile_on_both_engines() -> None:
    from leadscore.engine.incremental import Scorer
    from leadscore.events import Event

    model = Model.model_validate({"name": "m", "engagement": {"decay": {"half_life_days": 0.5}},
                                  "interests": [
        {"topic": "paper", "page": "/paper*", "points": 1},
        {"topic": "paint", "page": "/paint*", "points": 1}]})
    day = 86_400_000_000
    # paper 25 days old at a half-life of half a day: 2^-50 ≈ 9e-16, 0 in the batch plan's
    # DECIMAL(38, 12) sum and not 0 as a double — a topic in one engine's profile only, before
    # MIN_WEIGHT; paint, a day old: 0.25.
    times = {"paper": AS_OF - 25 * day, "paint": AS_OF - day}
    events = pa.table({
        "lead_id": ["l1", "l1"], "type": ["page", "page"],
        "timestamp": pa.array(list(times.values()), pa.int64()).cast(
            pa.timestamp("us", "UTC")),
        "path": ["/paper/a4", "/paint/oil"]})
    batch = score_many([model], events, as_of=AS_OF).to_pylist()[0]["interests"]
    scorer = Scorer([model])
    for topic, at in times.items():
        scorer.update_one(Event(lead_id="l1", type="page", timestamp=at,
                                path=f"/{topic}/x"))
    live = scorer.score("l1", as_of=AS_OF).interests
    assert [i["topic"] for i in batch] == ["paint"]
    assert [topic for topic, _ in live] == ["paint"]
