"""Live memberships in the store: kept current as events arrive and as time passes, with
entered/left history, and equal to the batch evaluation of the same log."""

from __future__ import annotations

import pyarrow as pa
import pytest

from leadscore.ingest.apply import log_row
from leadscore.ingest.validate import validate
from leadscore.model.loader import load_model
from leadscore.segments.batch import segment_many
from leadscore.segments.definition import load_segment, order
from leadscore.segments.live import SegmentKeeper, history, members
from leadscore.service import Service
from leadscore.store import leads as lead_store
from leadscore.timeutil import US_PER_DAY, iso, now_us, parse_timestamp

MODEL = """
name: shop
fit: [{name: adult, when: {age: {gte: 18}}, points: 10}]
engagement:
  rules:
    - {name: browse, page: /products/*, points: 5}
    - {name: order, event: Order Completed, points: 20}
lifecycle: [{stage: customer, on: {event: Order Completed}}]
"""
RECENT = """
name: recent buyers
model: shop
when: {did: {event: Order Completed, within_days: 7}}
"""
ADULT_BROWSERS = """
name: adult browsers
model: shop
when: {all: [{age: {gte: 18}}, {did: {page: /products/*}}, {not: {in_segment: recent buyers}}]}
"""


def _msg(kind: str, user: str, at: int, **extra: object) -> dict[str, object]:
    return {"type": kind, "userId": user, "timestamp": iso(at),
            "messageId": f"{user}-{kind}-{at}", **extra}


def test_memberships_follow_events_traits_and_time(db_url: str) -> None:
    model = load_model("shop.yaml", text=MODEL)
    segments = order([load_segment("a.yaml", text=ADULT_BROWSERS),
                      load_segment("r.yaml", text=RECENT)])
    t0 = parse_timestamp("2026-05-01T10:00:00Z")
    with Service.open(db_url, models=[model], background=False) as service:
        keeper = SegmentKeeper(service, segments)
        service.ingest([_msg("identify", "ann", t0, traits={"age": 30}),
                        _msg("page", "ann", t0 + 1, properties={"path": "/products/a"}),
                        _msg("page", "bob", t0 + 2, properties={"path": "/products/a"}),
                        _msg("track", "cy", t0 + 3, event="Order Completed")],
                       received_at=t0 + 10)
        changes = keeper.refresh(now=t0 + 10)
        assert {(c.segment, c.lead_id, c.kind) for c in changes} == {
            ("adult browsers", "ann", "entered"), ("recent buyers", "cy", "entered")}
        with service.db.read() as connection:
            rows, total = members(connection, "adult browsers", 10, 0)
        assert total == 1 and rows[0]["entered_at"] == t0 + 1   # the event's time
        # A trait change: bob becomes an adult browser.
        service.ingest([_msg("identify", "bob", t0 + 20, traits={"age": 40})],
                       received_at=t0 + 20)
        assert [(c.lead_id, c.kind) for c in keeper.refresh(now=t0 + 20)] == [("bob",
                                                                                "entered")]
        # Ann buys: she enters recent buyers and so leaves adult browsers.
        service.ingest([_msg("track", "ann", t0 + 30, event="Order Completed")],
                       received_at=t0 + 30)
        assert {(c.segment, c.kind) for c in keeper.refresh(now=t0 + 30)} == {
            ("recent buyers", "entered"), ("adult browsers", "left")}
        # Time passes: 7 days later the window closes, nothing new arrived.
        later = t0 + 30 + 7 * US_PER_DAY + 1
        assert {(c.segment, c.lead_id, c.kind) for c in keeper.refresh(now=later)} == {
            ("recent buyers", "ann", "left"), ("recent buyers", "cy", "left"),
            ("adult browsers", "ann", "entered")}
        with service.db.read() as connection:
            past = history(connection, "recent buyers", "ann")
        assert past[0]["left_at"] == later and past[0]["entered_at"] == t0 + 30
        # The store and the batch agree on the same log.
        with service.db.read() as connection:
            live = {(s.name, r["lead_id"]) for s in segments
                    for r in members(connection, s.name, None, 0)[0]}
        events = pa.table({
            "lead_id": ["ann", "bob", "cy", "ann"], "timestamp": pa.array(
                [t0 + 1, t0 + 2, t0 + 3, t0 + 30], pa.int64()).cast(pa.timestamp("us", "UTC")),
            "type": ["page", "page", "track", "track"],
            "event": [None, None, "Order Completed", "Order Completed"],
            "path": ["/products/a", "/products/a", None, None]})
        leads = pa.table({"lead_id": ["ann", "bob"], "age": [30, 40]})
        batch = segment_many(segments, [model], events, leads, as_of=later)
        assert {(r["segment"], r["lead_id"]) for r in batch.to_pylist()} == live


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_cursor_waits_for_a_log_row_committed_after_later_ones(db_url: str) -> None:
    """On PostgreSQL a transaction may commit its log row after another that took a later
    seq: a refresh in between must not move the cursor past it, or that lead's change would
    wait for the next sweep."""
    model = load_model("shop.yaml", text=MODEL)
    segments = order([load_segment("a.yaml", text=ADULT_BROWSERS),
                      load_segment("r.yaml", text=RECENT)])
    now = now_us()
    with Service.open(db_url, models=[model], background=False) as service:
        keeper = SegmentKeeper(service, segments)
        service.ingest([_msg("identify", "ann", now, traits={"age": 30}),
                        _msg("identify", "bob", now, traits={"age": 40})])
        assert keeper.refresh() == []
        # Ann's page view: its transaction takes the next seq and is still open ...
        with service.db.engine.connect() as in_flight:
            transaction = in_flight.begin()
            try:
                message = validate(_msg("page", "ann", now + 1,
                                        properties={"path": "/products/a"}), 0, now_us())
                lead_store.append(in_flight, [log_row(message, now_us())])
                # ... while Bob's, later in seq, commits.
                service.ingest([_msg("page", "bob", now + 2,
                                     properties={"path": "/products/a"})])
                early = [(c.lead_id, c.kind) for c in keeper.refresh()]
            finally:
                transaction.commit()    # whatever happened: never leave it holding locks
        assert early == []
        assert {(c.lead_id, c.kind) for c in keeper.refresh()} == {
            ("ann", "entered"), ("bob", "entered")}
