"""Optimistic scoring (`ingest.optimistic`): a call's leads scored before the write lock are
written as planned only where the store did not change under them; a lead written meanwhile
by another writer, a messageId stored meanwhile, a crossing, are written by the ordinary path
in the same transaction — and every lead ends as a serial run leaves its twin.

Each test drives the two halves by hand: `prepare_call` (what a waiting call does outside the
lock), then another writer (a second `Service` on the same store), then the transaction
(`apply_group` under the write lock), on real SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import text

from leadscore import load_model
from leadscore.ingest.plan import PROBE, Outlook, Plans
from leadscore.ingest.transaction import Written, apply_group, prepare_call
from leadscore.ingest.validate import Message, validate
from leadscore.service import Service
from leadscore.store.group_commit import Pending
from leadscore.timeutil import iso, now_us

MODEL = Path(__file__).parents[1] / "api" / "models" / "web.yaml"
T0 = now_us() - 3_600_000_000
STAMP = iso(T0 - 60_000_000)


def open_service(db_url: str) -> Service:
    return Service.open(db_url, models=[load_model(MODEL)], background=False)


def track(lead: str, tag: str, n: int, event: str = "Clicked") -> list[dict[str, Any]]:
    return [{"type": "track", "userId": lead, "event": event, "timestamp": STAMP,
             "messageId": f"{lead}-{tag}-{i}"} for i in range(n)]


def prepared(service: Service, batch: list[dict[str, Any]], now: int
             ) -> Pending[Message, Written]:
    """A call as it waits for the writer: validated, then prepared outside the lock."""
    pending: Pending[Message, Written] = Pending(
        [validate(m, i, now) for i, m in enumerate(batch)], now)
    prepare_call(service.db, service.active_models, service.decoded, service.filters,
                 pending, Outlook())    # PostgreSQL's service does not plan: the mechanism
    return pending


def commit(service: Service, *group: Pending[Message, Written]) -> list[Written]:
    return service.db.write(lambda connection: apply_group(
        service.db, connection, service.active_models(connection), list(group),
        service.filters, service.decoded))


def used(pending: Pending[Message, Written], lead: str) -> int:
    plans = pending.prepared
    assert isinstance(plans, Plans) and lead in plans.leads, "no plan for " + lead
    return plans.leads[lead].used


def stored(service: Service, lead: str) -> list[tuple[Any, ...]]:
    """The lead's saved states and scores, as a twin's would be (the lead id left out)."""
    with service.db.read() as connection:
        states = connection.execute(text(
            "SELECT model, model_version, latest, state, updated_at FROM lead_state "
            "WHERE lead_id = :l"), {"l": lead}).all()
        scores = connection.execute(text(
            "SELECT model, fit, engagement, score, grade, mql, as_of, reasons FROM scores "
            "WHERE lead_id = :l"), {"l": lead}).all()
    return [tuple(r) for r in states] + [tuple(r) for r in scores]


def clicked(service: Service, lead: str) -> int:
    reasons = service.get_lead(lead, "web")["reasons"]
    return sum(r.get("matched") or 0 for r in reasons if r["rule"] == "clicked")


def twin(service: Service, lead: str, calls: list[tuple[list[dict[str, Any]], int]]) -> None:
    """`lead`'s messages sent again for `lead`'s twin, call by call in this order (serially)."""
    for batch, now in calls:
        service.ingest([{**m, "userId": "twin-" + m["userId"],
                         "messageId": "twin-" + m["messageId"]} for m in batch],
                       received_at=now)


def test_a_quiet_lead_is_written_as_planned(db_url: str) -> None:
    service = open_service(db_url)
    try:
        first = track("ann", "a", 3)
        service.ingest(first, received_at=T0)
        second = track("ann", "b", 2)
        pending = prepared(service, second, T0 + 1_000)
        [(results, handoffs, _)] = commit(service, pending)
        assert used(pending, "ann") == 1
        assert [r.status for r in results] == ["accepted", "accepted"]
        assert {r.lead_id for r in results} == {"ann"} and handoffs == []
        assert clicked(service, "ann") == 5
        twin(service, "ann", [(first, T0), (second, T0 + 1_000)])
        assert stored(service, "ann") == stored(service, "twin-ann")
        with service.db.read() as connection:    # the log holds each message once
            assert connection.execute(text(
                "SELECT count(*) FROM events WHERE message_id LIKE 'ann-%'")).scalar() == 5
    finally:
        service.close()


def test_a_lead_written_meanwhile_is_scored_again_and_ends_as_a_serial_run(db_url: str
                                                                            ) -> None:
    """Prepared against ann's and bob's states; another worker then writes ann: ann takes the
    ordinary path (from the state stored now), bob is written as planned, in the same
    transaction; both end as their twins fed serially."""
    mine, other = open_service(db_url), open_service(db_url)
    try:
        setup = track("ann", "a", 3) + track("bob", "a", 2)
        mine.ingest(setup, received_at=T0)
        batch = track("ann", "c", 1) + track("bob", "c", 1)
        pending = prepared(mine, batch, T0 + 2_000)
        meanwhile = track("ann", "b", 2)
        other.ingest(meanwhile, received_at=T0 + 1_000)
        [(results, _, _)] = commit(mine, pending)
        assert (used(pending, "ann"), used(pending, "bob")) == (0, 1)
        assert [r.status for r in results] == ["accepted"] * 2
        assert (clicked(mine, "ann"), clicked(mine, "bob")) == (6, 3)
        twin(mine, "ann", [(setup[:3], T0), (meanwhile, T0 + 1_000), (batch[:1], T0 + 2_000)])
        twin(mine, "bob", [(setup[3:], T0), (batch[1:], T0 + 2_000)])
        assert stored(mine, "ann") == stored(mine, "twin-ann")
        assert stored(mine, "bob") == stored(mine, "twin-bob")
    finally:
        mine.close()
        other.close()


def test_a_message_stored_meanwhile_is_a_duplicate_counted_once(db_url: str) -> None:
    mine, other = open_service(db_url), open_service(db_url)
    try:
        mine.ingest(track("ann", "a", 3), received_at=T0)
        batch = track("ann", "c", 2)
        pending = prepared(mine, batch, T0 + 2_000)
        other.ingest(batch[:1], received_at=T0 + 1_000)     # the same messageId, first
        [(results, _, _)] = commit(mine, pending)
        assert used(pending, "ann") == 0
        assert [r.status for r in results] == ["duplicate", "accepted"]
        assert clicked(mine, "ann") == 5
    finally:
        mine.close()
        other.close()


def test_two_calls_planning_one_lead_are_both_counted(db_url: str) -> None:
    """Two waiting calls prepared the same lead, each without the other's events: in one
    transaction the first's plan is where the lead starts from, the second's events are
    folded into it; the lead ends as its twin fed call by call."""
    service = open_service(db_url)
    try:
        setup, b, c = track("ann", "a", 3), track("ann", "b", 1), track("ann", "c", 2)
        service.ingest(setup, received_at=T0)
        first = prepared(service, b, T0 + 1_000)
        second = prepared(service, c, T0 + 2_000)
        commit(service, first, second)
        assert (used(first, "ann"), used(second, "ann")) == (1, 0)
        assert clicked(service, "ann") == 6
        twin(service, "ann", [(setup, T0), (b, T0 + 1_000), (c, T0 + 2_000)])
        assert stored(service, "ann") == stored(service, "twin-ann")
    finally:
        service.close()


def test_a_plan_after_another_change_of_its_lead_in_the_transaction_is_not_used(
        db_url: str) -> None:
    """An earlier call of the same transaction, not prepared, changes the lead first: the
    later call's plan (folded without that change) does not stand."""
    service = open_service(db_url)
    try:
        setup, b, c = track("ann", "a", 3), track("ann", "b", 2), track("ann", "c", 1)
        service.ingest(setup, received_at=T0)
        plain: Pending[Message, Written] = Pending(
            [validate(m, i, T0 + 1_000) for i, m in enumerate(b)], T0 + 1_000)
        later = prepared(service, c, T0 + 2_000)
        commit(service, plain, later)
        assert used(later, "ann") == 0
        assert clicked(service, "ann") == 6
        twin(service, "ann", [(setup, T0), (b + c, T0 + 2_000)])
        assert stored(service, "ann") == stored(service, "twin-ann")
    finally:
        service.close()


def test_a_crossing_is_handed_off_once(db_url: str) -> None:
    """A demo request lifts a known person over the MQL threshold: no plan is made for it
    (the handoff is routed under the lock), and the handoff is written once, even when a
    second worker had prepared the same crossing."""
    mine, other = open_service(db_url), open_service(db_url)
    try:
        mine.ingest([{"type": "identify", "userId": "ann", "messageId": "id-ann",
                      "timestamp": STAMP, "traits": {"email": "ann@example.com"}}],
                    received_at=T0)
        mine.ingest(track("ann", "a", 1), received_at=T0)
        demo = track("ann", "d", 1, "Demo Requested")
        pending = prepared(mine, demo, T0 + 1_000)
        again = prepared(other, demo, T0 + 1_000)
        assert pending.prepared is None and again.prepared is None
        [(_, handoffs, _)] = commit(mine, pending)
        [(results, more, _)] = commit(other, again)
        assert len(handoffs) == 1 and more == [] and results[0].status == "duplicate"
        assert [h.id for h in mine.handoffs()[0]] == handoffs
        assert mine.get_lead("ann", "web")["mql"] is True
    finally:
        mine.close()
        other.close()


def test_concurrent_writers_on_one_store_count_every_event_once(db_url: str) -> None:
    """Two services, three threads each, over a handful of leads (many calls wait, are
    prepared, and collide): each lead ends with every event of it counted once, as its
    state replayed from the log says."""
    services = [open_service(db_url), open_service(db_url)]
    leads = [f"lead{i}" for i in range(4)]
    try:
        services[0].ingest([m for lead in leads for m in track(lead, "setup", 1)])

        def work(service: Service, worker: int) -> None:
            for call in range(8):
                service.ingest([m for lead in leads
                                for m in track(lead, f"w{worker}-{call}", 2)])

        threads = [threading.Thread(target=work, args=(services[i % 2], i)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        expected = 1 + 6 * 8 * 2
        for lead in leads:
            assert clicked(services[0], lead) == expected
        before = {lead: services[0].get_lead(lead, "web")["engagement"] for lead in leads}
        services[0].rescore("web")                  # every lead from its log
        after = {lead: services[0].get_lead(lead, "web")["engagement"] for lead in leads}
        # Equal but for the decay between the two times they are as of (seconds, 30-day
        # half-life).
        assert all(abs(before[k] - after[k]) < 1e-4 for k in leads)
    finally:
        for service in services:
            service.close()


def test_planning_pauses_where_plans_seldom_stand() -> None:
    """Where most plans are found stale under the lock (writers on the same few leads), a
    call is planned only now and then; once they stand again, every call is."""
    outlook = Outlook()
    assert outlook.worth()                      # nothing known yet
    for _ in range(20):
        outlook.report(100, 10)
    asked = [outlook.worth() for _ in range(4 * PROBE)]
    assert sum(asked) == 4                      # one probe in PROBE calls
    for _ in range(40):
        outlook.report(100, 90)
    assert all(outlook.worth() for _ in range(PROBE))
