"""Customer lifecycle: recency, frequency, monetary value and tenure in the scores output of
both engines (and in `rfm_many`, which segments read), null for leads that never bought; a
segment picks lapsed and loyal customers by them."""

from __future__ import annotations

import pyarrow as pa
import pytest

from leadscore.engine.batch import score_many
from leadscore.engine.batch.rfm import rfm_many
from leadscore.engine.incremental import Scorer
from leadscore.events import Event
from leadscore.model.loader import load_model
from leadscore.segments.batch import segment_many
from leadscore.segments.definition import load_segment
from leadscore.timeutil import US_PER_DAY, parse_timestamp

MODEL = """
name: shop
lifecycle:
  - {stage: subscriber, on: {event: Newsletter Subscribed}}
  - {stage: customer, on: {event: Order Completed}}
engagement:
  rules:
    - {name: signup, event: Newsletter Subscribed, points: 5, limit: once}
"""
AS_OF = parse_timestamp("2026-05-01T00:00:00Z")
DAY = US_PER_DAY


def _events() -> list[Event]:
    def order(lead: str, days_ago: float, revenue: object) -> Event:
        props = {} if revenue is None else {"revenue": revenue}
        return Event(lead, AS_OF - int(days_ago * DAY), "track", "Order Completed", None, props)

    return sorted([
        # loyal: three orders, the last 5 days ago (one without a revenue: worth 0)
        order("loyal", 200, 40.0), order("loyal", 60, 25.5), order("loyal", 5, None),
        # lapsed: one order 150 days ago
        order("lapsed", 150, 99.0),
        # an order after as_of is not seen
        order("lapsed", -3, 500.0),
        # never bought
        Event("prospect", AS_OF - 2 * DAY, "track", "Newsletter Subscribed", None, {}),
    ], key=lambda e: e.timestamp)


def _table(events: list[Event]) -> pa.Table:
    return pa.table({
        "lead_id": [e.lead_id for e in events],
        "timestamp": pa.array([e.timestamp for e in events], pa.int64()).cast(
            pa.timestamp("us", tz="UTC")),
        "type": [e.type for e in events], "event": [e.event for e in events],
        "path": pa.array([e.path for e in events], pa.string()),
        "revenue": pa.array([e.properties.get("revenue") for e in events], pa.float64())})


EXPECTED = {
    "loyal": {"recency_days": 5.0, "frequency": 3, "monetary": 65.5, "tenure_days": 200.0},
    "lapsed": {"recency_days": 150.0, "frequency": 1, "monetary": 99.0, "tenure_days": 150.0},
    "prospect": {"recency_days": None, "frequency": None, "monetary": None,
                 "tenure_days": None},
}


def test_scores_output_has_rfm_and_null_for_non_customers() -> None:
    model = load_model("shop.yaml", text=MODEL)
    rows = {r["lead_id"]: r for r in score_many(model, _table(_events()), as_of=AS_OF)
            .to_pylist()}
    for lead, want in EXPECTED.items():
        got = {k: rows[lead][k] for k in want}
        assert got == pytest.approx(want) if want["frequency"] else got == want, lead
    assert rows["loyal"]["purchases"] == 3 and rows["prospect"]["purchases"] == 0


def test_incremental_and_rfm_many_agree_with_the_scores() -> None:
    model = load_model("shop.yaml", text=MODEL)
    scorer = Scorer(model)
    for event in _events():
        if event.timestamp <= AS_OF:
            scorer.update_one(event, as_of=AS_OF)
    live = {s.lead_id: s.row() for s in scorer.scores(as_of=AS_OF)}
    separate = {r["lead_id"]: r for r in rfm_many(model, _table(_events()), as_of=AS_OF)
                .to_pylist()}
    for lead, want in EXPECTED.items():
        assert {k: live[lead][k] for k in want} == (pytest.approx(want) if want["frequency"]
                                                     else want), lead
        if want["frequency"]:
            assert {k: separate[lead][k] for k in want} == pytest.approx(want), lead
        else:
            assert lead not in separate


def test_saved_state_keeps_recency_and_monetary() -> None:
    model = load_model("shop.yaml", text=MODEL)
    scorer = Scorer(model)
    for event in _events():
        if event.timestamp <= AS_OF:
            scorer.update_one(event, as_of=AS_OF)
    restored = Scorer(model)
    restored.load_state(scorer.state("loyal"))
    row = restored.score("loyal", "shop", as_of=AS_OF + 10 * DAY).row()
    assert (row["recency_days"], row["frequency"], row["monetary"]) == (15.0, 3, 65.5)


@pytest.mark.parametrize(("segment", "members"), [
    ("{all: [{customer.frequency: {gte: 1}}, {customer.recency_days: {gt: 90}}]}", {"lapsed"}),
    ("{all: [{customer.frequency: {gte: 3}}, {customer.recency_days: {lte: 30}}, "
     "{customer.monetary: {gte: 50}}]}", {"loyal"}),
    ("{customer.tenure_days: {gte: 100}}", {"loyal", "lapsed"}),
])
def test_a_segment_selects_lapsed_or_loyal_customers(segment: str, members: set[str]) -> None:
    model = load_model("shop.yaml", text=MODEL)
    chosen = load_segment("s.yaml", text=f"name: s\nmodel: shop\nwhen: {segment}\n")
    rows = segment_many([chosen], [model], _table(_events()), as_of=AS_OF).to_pylist()
    assert {r["lead_id"] for r in rows} == members


@pytest.mark.parametrize("as_of", ["2026-06-01T00:00:00Z", "2026-12-01T00:00:00Z"])
def test_the_example_lapsed_and_loyal_segments_follow_the_scores(as_of: str) -> None:
    from pathlib import Path

    from leadscore.model import load_models
    from leadscore.segments.definition import load_segments

    root = Path(__file__).parents[2] / "examples"
    segments = load_segments([root / "segments" / "loyal-customers.yaml",
                              root / "segments" / "lapsed-customers.yaml"])
    models = load_models([root / "b2c-art-supplies.yaml"])
    events, leads = str(root / "data" / "events.csv"), str(root / "data" / "leads.csv")
    rows = segment_many(segments, models, events, leads, as_of=as_of).to_pylist()
    scores = score_many(models, events, leads, as_of=as_of).to_pylist()
    customers = [s for s in scores if s["frequency"] is not None]
    assert customers and all(s["purchases"] == s["frequency"] for s in customers)
    loyal = {s["lead_id"] for s in customers if s["frequency"] >= 2 and s["recency_days"] <= 90}
    lapsed = {s["lead_id"] for s in customers if s["recency_days"] > 120}
    assert {r["lead_id"] for r in rows if r["segment"] == "loyal customers"} == loyal
    assert {r["lead_id"] for r in rows if r["segment"] == "lapsed customers"} == lapsed
    assert (loyal if as_of.startswith("2026-06") else lapsed)   # each shows up at one date


@pytest.mark.spark
def test_spark_gives_the_same_customer_fields(spark: object) -> None:
    model = load_model("shop.yaml", text=MODEL)
    rows = {r["lead_id"]: r for r in score_many(model, _table(_events()), as_of=AS_OF,
                                                engine="spark", spark=spark).to_pylist()}
    for lead, want in EXPECTED.items():
        got = {k: rows[lead][k] for k in want}
        assert got == pytest.approx(want) if want["frequency"] else got == want, lead


def test_a_state_saved_before_rfm_is_refused_for_a_customer_so_it_is_replayed(
        db_url: str) -> None:
    """A state saved before `last_buy` and `spend` were kept would read as no purchase
    (recency and monetary null): loading it is refused for a lead that bought, and the
    service replays that lead's events instead."""
    import json

    from sqlalchemy import Connection, select, update

    from leadscore.errors import EngineError
    from leadscore.service import Service
    from leadscore.store.schema import lead_state
    from leadscore.timeutil import iso

    model = load_model("shop.yaml", text=MODEL)
    scorer = Scorer(model)
    for event in _events():
        if event.timestamp <= AS_OF:
            scorer.update_one(event, as_of=AS_OF)
    old = scorer.state("loyal")
    for key in ("last_buy", "spend"):
        del old["models"]["shop"][key]
    with pytest.raises(EngineError, match="predates recency and monetary"):
        Scorer(model).load_state(old)
    never = scorer.state("prospect")               # no purchase: nothing is missing
    for key in ("last_buy", "spend"):
        del never["models"]["shop"][key]
    Scorer(model).load_state(never)

    with Service.open(db_url, models=[model], background=False) as service:
        service.ingest([{"type": "track", "userId": "loyal", "event": e.event,
                         "timestamp": iso(e.timestamp), "properties": dict(e.properties)}
                        for e in _events() if e.lead_id == "loyal"], received_at=AS_OF)

        def strip(connection: Connection) -> None:
            state = connection.execute(select(lead_state.c.state)).scalar_one()
            state = state if isinstance(state, dict) else json.loads(state)
            for key in ("last_buy", "spend"):
                del state[key]
            connection.execute(update(lead_state).values(state=state))

        service.db.write(strip)
        lead = service.get_lead("loyal", as_of=AS_OF + 10 * DAY)
        assert (lead["recency_days"], lead["frequency"], lead["monetary"]) == (15.0, 3, 65.5)
