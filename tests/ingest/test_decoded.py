"""Engine states kept decoded between transactions (`ingest.decoded`): used only where the
store still holds the text they were kept with, so a lead written by another worker (here,
another `Service` on the same store) is read from the store, never from a stale copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from leadscore import load_model
from leadscore.ingest.transaction import prepare_messages
from leadscore.ingest.validate import validate
from leadscore.service import Service
from leadscore.timeutil import iso, now_us

MODEL = Path(__file__).parents[1] / "api" / "models" / "web.yaml"


def clicks(lead: str, tag: str, n: int) -> list[dict[str, Any]]:
    stamp = iso(now_us() - 60_000_000)
    return [{"type": "track", "userId": lead, "event": "Clicked", "timestamp": stamp,
             "messageId": f"{tag}-{i}"} for i in range(n)]


def clicked(service: Service, lead: str) -> int:
    reasons = service.get_lead(lead, "web")["reasons"]
    return sum(r.get("matched") or 0 for r in reasons if r["rule"] == "clicked")


def open_service(db_url: str) -> Service:
    return Service.open(db_url, models=[load_model(MODEL)], background=False)


def test_a_state_kept_decoded_is_used_by_the_next_write(db_url: str) -> None:
    service = open_service(db_url)
    try:
        service.ingest(clicks("ann", "a", 3))
        assert len(service.decoded) == 1          # ann under `web`, as just saved
        hits = service.decoded.hits
        service.ingest(clicks("ann", "b", 2))
        assert service.decoded.hits == hits + 1
        assert clicked(service, "ann") == 5
    finally:
        service.close()


def test_a_lead_written_by_another_worker_is_read_from_the_store(db_url: str) -> None:
    """Worker A keeps ann's state decoded; worker B then scores ann: A's copy is stale, and
    A's next write must start from B's state, not from its own."""
    first, second = open_service(db_url), open_service(db_url)
    first.group_commit.prepare = None      # only the check under the lock stands in the way
    try:
        first.ingest(clicks("ann", "a", 3))
        second.ingest(clicks("ann", "b", 2))
        misses = first.decoded.misses
        first.ingest(clicks("ann", "c", 1))
        assert first.decoded.misses == misses + 1
        assert clicked(first, "ann") == clicked(second, "ann") == 6
    finally:
        first.close()
        second.close()


def test_states_decoded_outside_the_write_lock_are_used_under_it(db_url: str) -> None:
    first, second = open_service(db_url), open_service(db_url)
    try:
        first.ingest(clicks("ann", "a", 3) + clicks("bob", "b", 2))
        batch = clicks("ann", "c", 1) + clicks("bob", "d", 1)
        messages = [validate(m, i, now_us()) for i, m in enumerate(batch)]
        prepare_messages(second.db, second.active_models, second.decoded, messages)
        assert len(second.decoded) == 2
        hits = second.decoded.hits
        second.ingest(batch)
        assert second.decoded.hits == hits + 2
        assert (clicked(second, "ann"), clicked(second, "bob")) == (4, 3)
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_state_decoded_before_a_change_is_not_used_after_it(db_url: str) -> None:
    """Decoded outside the lock, then the lead is written by another worker before this one's
    transaction: the stored text differs, the store's state is used."""
    first, second = open_service(db_url), open_service(db_url)
    try:
        first.ingest(clicks("ann", "a", 3))
        batch = clicks("ann", "c", 1)
        messages = [validate(m, i, now_us()) for i, m in enumerate(batch)]
        prepare_messages(second.db, second.active_models, second.decoded, messages)
        first.ingest(clicks("ann", "b", 2))       # after second's read, before its write
        second.group_commit.prepare = None        # no second read: the lock's check only
        second.ingest(batch)
        assert clicked(second, "ann") == 6
    finally:
        first.close()
        second.close()


def test_a_lead_loaded_alone_uses_its_saved_state(db_url: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A lead loaded one at a time (an id an identify links, a merge) reads its state
    decoded already: it is installed as saved, not replayed from the log."""
    from leadscore.ingest.session import Session

    service = open_service(db_url)
    try:
        service.ingest(clicks("ann", "a", 3))

        def replayed(*_: object, **__: object) -> None:
            raise AssertionError("replayed from the log")

        monkeypatch.setattr(Session, "rebuild", replayed)

        def load(connection: Any) -> float:
            session = Session(service.db, connection, service.active_models(connection),
                              now_us(), decoded=service.decoded)
            scorer = session.scorer("ann")
            assert scorer is not None
            return scorer.score("ann", "web", as_of=session.as_of("ann")).engagement

        assert service.db.write(load) > 0
    finally:
        service.close()
