"""Batch and live agree: random worlds, random segments, the same memberships."""

from __future__ import annotations

import random
from typing import Any

import pyarrow as pa
import pytest

from leadscore.engine.incremental import Scorer
from leadscore.events import Event
from leadscore.model.loader import load_model
from leadscore.model.schema import Model
from leadscore.segments.batch import segment_many
from leadscore.segments.definition import Segment, load_segment, order
from leadscore.segments.evaluate import facts_from_scorer, members
from leadscore.timeutil import US_PER_DAY, parse_timestamp

MODEL = """
name: shop
timezone: Europe/Berlin
fit:
  - {name: adult, when: {age: {gte: 18}}, points: 10}
  - {name: student, when: {occupation: {eq: student}}, disqualify: student}
engagement:
  decay: {half_life_days: 20}
  rules:
    - {name: browse, page: /products/*, points: 4, limit: daily}
    - {name: signup, event: Newsletter Subscribed, points: 5, limit: once}
    - {name: click, event: Email Link Clicked, points: 3, cap: 9}
interests:
  - {topic: paint, page: /products/paint*, points: 5}
  - {topic: "{properties.topic}", event: Email Link Clicked, points: 3}
grades: {A: 10, B: 5}
temperature: {hot: 15, warm: 6}
thresholds: {mql: 20}
lifecycle:
  - {stage: subscriber, on: {event: Newsletter Subscribed}}
  - {stage: customer, on: {event: Order Completed}}
"""

ATOMS = [
    "{score.temperature: {in: [hot, warm]}}",
    "{score.score: {gte: %d}}",
    "{score.grade: A}",
    "{score.mql: true}",
    "{score.disqualified: false}",
    "{stage: {in: [subscriber, customer]}}",
    "{age: {range: [20, 40]}}",
    "{country: {in: [DE, AT]}}",
    "{did: {event: Order Completed, within_days: %d}}",
    "{not_did: {page: /products/*, within_days: %d, at_least: 2}}",
    "{did: {page: /products/paint*, at_least: %d}}",
    "{did: {event: Email Link Clicked, where: {properties.topic: paint}, within_days: %d}}",
    "{customer.frequency: {gte: 2}}",
    "{customer.recency_days: {lte: %d}}",
    "{customer.monetary: {gt: 50}}",
    "{interest.paint: {gte: %d}}",
    "{interest.paper: {exists: true}}",
]
EVENTS = [("track", "Newsletter Subscribed", None), ("track", "Order Completed", None),
          ("track", "Email Link Clicked", None), ("page", None, "/products/paint/oil"),
          ("page", None, "/products/paper"), ("page", None, "/careers")]


def _atom(rng: random.Random) -> str:
    atom = rng.choice(ATOMS)
    return atom % rng.choice([1, 2, 3, 7, 30]) if "%d" in atom else atom


def _tree(rng: random.Random, depth: int = 0) -> str:
    if depth > 1 or rng.random() < 0.4:
        return _atom(rng)
    kind = rng.choice(["all", "any", "not"])
    if kind == "not":
        return "{not: " + _tree(rng, depth + 1) + "}"
    items = ", ".join(_tree(rng, depth + 1) for _ in range(rng.randint(1, 3)))
    return "{" + kind + ": [" + items + "]}"


def _world(rng: random.Random, as_of: int) -> tuple[list[Event], list[dict[str, object]]]:
    events, leads = [], []
    for i in range(rng.randint(5, 25)):
        lead_id = f"l{i}"
        if rng.random() < 0.8:
            leads.append({"lead_id": lead_id, "age": rng.choice([None, 16, 25, 39, 60]),
                          "country": rng.choice([None, "DE", "FR"]),
                          "occupation": rng.choice([None, "student", "chef"])})
        for _ in range(rng.randint(0, 8)):
            kind, name, path = rng.choice(EVENTS)
            ts = as_of - rng.randint(0, 60 * US_PER_DAY) + rng.choice([0, 0, 1])
            props: dict[str, object] = {}
            if name == "Order Completed":
                props["revenue"] = rng.choice([10.0, 40.0, 99.5])
            if name == "Email Link Clicked":
                props["topic"] = rng.choice(["paint", "paper"])
            events.append(Event(lead_id, min(ts, as_of), kind, name, path, props))
    return sorted(events, key=lambda e: e.timestamp), leads


def _events_table(events: list[Event]) -> pa.Table:
    return pa.table({
        "lead_id": [e.lead_id for e in events],
        "timestamp": pa.array([e.timestamp for e in events], pa.int64()).cast(
            pa.timestamp("us", tz="UTC")),
        "type": [e.type for e in events], "event": [e.event for e in events],
        "path": [e.path for e in events],
        "revenue": pa.array([e.properties.get("revenue") for e in events], pa.float64()),
        "topic": pa.array([e.properties.get("topic") for e in events], pa.string())})


def _case(seed: int) -> tuple[list[Segment], Model, pa.Table, pa.Table | None, int,
                              set[tuple[str, str]], list[str]]:
    """A random world and segments, and the memberships live evaluation gives."""
    rng = random.Random(seed)
    model = load_model("shop.yaml", text=MODEL)
    as_of = parse_timestamp("2026-05-01T12:00:00Z")
    events, leads = _world(rng, as_of)
    texts = [f"name: s{k}\nmodel: shop\nwhen: {_tree(rng)}\n" for k in range(4)]
    texts.append("name: both\nmodel: shop\nwhen: {all: [{in_segment: s0}, "
                 "{not: {in_segment: s1}}]}\n")
    segments = order([load_segment(f"s{k}.yaml", text=t) for k, t in enumerate(texts)])
    if not events:
        events = [Event("l0", as_of - 5, "track", "Order Completed", None, {"revenue": 1.0})]
    leads_table = pa.Table.from_pylist(leads) if leads else None

    scorer = Scorer(model)
    people = {str(row["lead_id"]): row for row in leads} | {}
    for e in events:
        people.setdefault(e.lead_id, {"lead_id": e.lead_id})
    for lead_id, row in people.items():
        traits = {k: v for k, v in row.items() if k != "lead_id" and v is not None}
        scorer.identify(lead_id, traits, as_of=as_of)
    scorer.update_many(events)
    expected = set()
    for lead_id in people:
        mine = [e for e in events if e.lead_id == lead_id]
        facts = facts_from_scorer(scorer, lead_id, "shop", mine, as_of)
        expected |= {(lead_id, name) for name in members(segments, facts)}
    return segments, model, _events_table(events), leads_table, as_of, expected, texts


@pytest.mark.parametrize("seed", range(12))
def test_batch_and_live_memberships_agree(seed: int) -> None:
    segments, model, events, leads, as_of, expected, texts = _case(seed)
    batch = segment_many(segments, [model], events, leads, as_of=as_of)
    got = {(r["lead_id"], r["segment"]) for r in batch.to_pylist()}
    assert got == expected, (texts, sorted(got ^ expected))


@pytest.mark.spark
@pytest.mark.parametrize("seed", [0, 4, 11])
def test_spark_memberships_equal_duckdb_and_live(seed: int, spark: Any) -> None:
    """The same plan on Spark: the same rows as DuckDB (entered_at and order included), and
    so the same memberships as live."""
    segments, model, events, leads, as_of, expected, texts = _case(seed)
    duck = segment_many(segments, [model], events, leads, as_of=as_of)
    on_spark = segment_many(segments, [model], events, leads, as_of=as_of, engine="spark",
                            spark=spark)
    assert on_spark.schema == duck.schema
    assert on_spark.to_pylist() == duck.to_pylist(), texts
    assert {(r["lead_id"], r["segment"]) for r in on_spark.to_pylist()} == expected, texts
