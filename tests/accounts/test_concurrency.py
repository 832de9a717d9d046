"""Several writers on one account at once (threads of one service; on PostgreSQL each its own
transaction and connection): no lost update of the account's saved score, and its MQA crossing
is handed off exactly once."""

from __future__ import annotations

import threading

import pytest

from leadscore.service import Service
from tests.accounts.conftest import NOW, group, identify, track

WRITERS, EVENTS = 4, 8


def test_concurrent_writers_lose_no_account_update(service: Service) -> None:
    people = [f"p{i}" for i in range(WRITERS * 2)]
    service.ingest([group(p, "acme", industry="software") for p in people] +
                   [identify(p, email=f"{p}@acme.com") for p in people], received_at=NOW)
    errors: list[BaseException] = []

    def write(mine: list[str]) -> None:
        try:
            for k in range(EVENTS):
                for person in mine:
                    message = {**track(person, "Vehicle Interest Submitted", k / 1000,
                                       model="SUV"), "messageId": f"{person}-{k}"}
                    service.ingest([message], received_at=NOW)
        except BaseException as exc:   # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(people[i::WRITERS],))
               for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    [saved], _ = service.list_accounts()
    fresh = service.get_account("acme", as_of=NOW)
    assert saved["score"] == pytest.approx(fresh["score"], abs=1e-9)     # no lost update
    assert fresh["engaged_leads"] == len(people)
    assert fresh["engagement"] == pytest.approx(5 * EVENTS * len(people), rel=1e-3)
    kinds = [item.kind for item in service.handoffs(limit=100)[0]]
    assert kinds.count("account_handoff") == 1
