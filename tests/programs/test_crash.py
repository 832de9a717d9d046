"""SIGKILL during a program run: a real `leadscore serve` process sends a welcome e-mail to
many leads due at once through a real (slow) SMTP server on 127.0.0.1; the process group is
killed mid-way and started again. Counted at the SMTP server, per enrolment and step (the
`X-Leadscore-Email` header): no e-mail is sent twice, and every e-mail is received except at
most one per killed process that was in the SMTP session at the kill — that one is recorded
as in doubt (`sending`, then `unknown`), never resent (at most once), never silently lost."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from leadscore.service import Service
from leadscore.store.lifecycle import actions
from leadscore.timeutil import US_PER_SECOND, iso, now_us
from tests.api.conftest import WRITE_KEY
from tests.api.live import Live, start
from tests.programs.inbox import Inbox, serving
from tests.programs.world import write_world

aiosmtpd = pytest.importorskip("aiosmtpd.controller")
LEADS = 120


@pytest.fixture
def slow_inbox() -> Iterator[tuple[Inbox, int]]:
    with serving(Inbox(pause=0.05)) as served:   # a kill lands mid-run
        yield served


def _enrol_many(live: Live) -> None:
    stamp = iso(now_us() - US_PER_SECOND)
    batch: list[dict[str, Any]] = []
    for i in range(LEADS):
        batch += [{"type": "identify", "userId": f"p{i}", "messageId": f"i{i}",
                   "timestamp": stamp,
                   "traits": {"email": f"p{i}@x.example", "first_name": f"P{i}"}},
                  {"type": "track", "userId": f"p{i}", "messageId": f"t{i}",
                   "timestamp": stamp, "event": "Newsletter Subscribed"}]
    with httpx.Client(base_url=live.url, auth=(WRITE_KEY, ""), timeout=60) as client:
        for at in range(0, len(batch), 100):
            response = client.post("/v1/batch", json={"batch": batch[at:at + 100]})
            assert response.status_code == 200, response.text


def _wait(condition: Any, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _statuses(db: str) -> dict[str, str]:
    with Service.open(db, background=False) as service, service.db.read() as connection:
        return {r.id: r.status for r in connection.execute(
            select(actions.c.id, actions.c.status).where(actions.c.kind == "email"))}


@pytest.mark.slow
def test_sigkill_mid_run_loses_no_email_and_sends_none_twice(
        tmp_path: Path, db_url: str, slow_inbox: tuple[Inbox, int]) -> None:
    box, smtp_port = slow_inbox
    root = write_world(tmp_path / "world")
    env = {"LEADSCORE_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
           "LEADSCORE_LINK_SECRET": "s3cret", "LEADSCORE_DELIVERY_LEASE_SECONDS": "2"}
    live = start(db_url, tmp_path, env=env, models=root / "models")
    try:
        _enrol_many(live)
        assert _wait(lambda: box.total() >= LEADS // 4, 60), live.log.read_text()[-2000:]
    finally:
        live.stop(signal.SIGKILL)
    killed_at = box.total()
    assert killed_at < LEADS, "the kill came too late to test anything"
    again = start(db_url, tmp_path, env=env, models=root / "models")
    try:
        # Every e-mail is eventually received or recorded in doubt (at most one: one process).
        def settled() -> bool:
            found = _statuses(db_url)
            return len(found) == LEADS and all(
                s in ("sent", "sending", "unknown") for s in found.values())

        assert _wait(settled, 90), (_statuses(db_url), again.log.read_text()[-2000:])
    finally:
        again.stop(signal.SIGTERM)
    statuses = _statuses(db_url)
    twice = {key: n for key, n in box.keys.items() if n > 1}
    assert not twice, f"sent twice: {twice}"
    in_doubt = {key for key, status in statuses.items() if status != "sent"}
    assert len(in_doubt) <= 1, f"in doubt after one kill: {sorted(in_doubt)}"
    lost = {key for key, status in statuses.items() if status == "sent"} - set(box.keys)
    assert not lost, f"marked sent, never received: {sorted(lost)}"
    never = set(statuses) - set(box.keys) - in_doubt
    assert not never
    assert len(box.keys) >= LEADS - 1 and set(box.keys) <= set(statuses)
    # One welcome e-mail per lead: the key names the enrolment and the step execution.
    assert {key.split("#")[0] for key in statuses} == {f"welcome|p{i}|1" for i in range(LEADS)}
