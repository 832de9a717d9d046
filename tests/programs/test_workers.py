"""The handoff dispatcher and the program scheduler in every worker and on every host, on one
PostgreSQL database, as real processes (`leadscore serve`), with a real webhook receiver and a
real SMTP server (aiosmtpd) on 127.0.0.1.

- Four workers: many leads subscribe (a welcome e-mail each) and cross the MQL threshold (a
  handoff each), their messages spread over the workers; each worker's dispatcher and
  scheduler deliver (their log lines carry the process id), and every handoff reaches the
  webhook once, every e-mail the SMTP server once.
- Two hosts: a program of e-mail, wait, webhook, wait, e-mail runs for many leads, its steps
  taken by both hosts' schedulers; each step of each enrolment runs once (the journey has each
  once, in order), and its e-mails and webhook call arrive once each.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from leadscore.store.database import Database
from leadscore.store.lifecycle import actions, journeys
from leadscore.store.schema import outbox
from leadscore.timeutil import US_PER_SECOND, iso, now_us
from tests.alerts.receiver import Receiver
from tests.api.conftest import MODELS, WRITE_KEY
from tests.api.live import Live, start
from tests.programs.inbox import Inbox, serving
from tests.programs.world import write_world

aiosmtpd = pytest.importorskip("aiosmtpd.controller")
pytestmark = [pytest.mark.postgres, pytest.mark.slow,
              pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)]

SECRET = "hook-secret"
BURST = """
name: burst
model: shop
enter: {{on: {{event: Newsletter Subscribed}}}}
steps:
  - id: hello
    send_email: {{template: hello}}
  - wait: {{minutes: 0.02}}
  - id: ping
    webhook: {{url: "{url}", secret: {secret}}}
  - wait: {{minutes: 0.02}}
  - id: reminder
    send_email: {{template: reminder}}
"""


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    with serving(Inbox()) as served:
        yield served


def world(root: Path, program: str | None = None) -> Path:
    """The program world (model `shop`, the welcome program or `program` in its place) and
    the service tests' model `web` (an e-mail and a demo request make an MQL): its models
    folder."""
    write_world(root, *([program] if program else []))
    shutil.copy(MODELS / "web.yaml", root / "models" / "web.yaml")
    return root / "models"


def subscribe(urls: list[str], leads: list[str], *, mql: bool, threads: int = 8) -> None:
    """Each lead: an identify with its e-mail, `Newsletter Subscribed` and, with `mql`, a demo
    request and a click (over the `web` MQL threshold); 5 leads a request, from several
    client threads, to the hosts in turn."""
    stamp = iso(now_us() - US_PER_SECOND)

    def messages(lead: str) -> list[dict[str, Any]]:
        found = [{"type": "identify", "userId": lead, "messageId": f"i-{lead}",
                  "timestamp": stamp, "traits": {"email": f"{lead}@x.example",
                                                 "first_name": lead.title()}},
                 {"type": "track", "userId": lead, "messageId": f"s-{lead}",
                  "timestamp": stamp, "event": "Newsletter Subscribed"}]
        if mql:
            found += [{"type": "track", "userId": lead, "messageId": f"{event}-{lead}",
                       "timestamp": stamp, "event": event}
                      for event in ("Demo Requested", "Clicked")]
        return found

    def send(number: int, group: list[str]) -> None:
        batch = [m for lead in group for m in messages(lead)]
        with httpx.Client(auth=(WRITE_KEY, ""), timeout=60) as client:
            response = client.post(urls[number % len(urls)] + "/v1/batch",
                                   json={"batch": batch})
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == len(batch)

    groups = [leads[at:at + 5] for at in range(0, len(leads), 5)]
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(send, n, g) for n, g in enumerate(groups)]:
            future.result()


def log_records(live: Live, message: str) -> list[dict[str, Any]]:
    return [record for line in live.log.read_text().splitlines() if line.startswith("{")
            for record in [json.loads(line)] if record.get("msg") == message]


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def rows(db: str, query: Any) -> list[Any]:
    database = Database(db)
    try:
        with database.read() as connection:
            return list(connection.execute(query))
    finally:
        database.close()


def test_four_workers_each_deliver_and_nothing_twice(tmp_path: Path, db_url: str,
                                                     inbox: tuple[Inbox, int]) -> None:
    box, smtp_port = inbox
    receiver = Receiver(SECRET).start()
    env = {"LEADSCORE_WEBHOOK_URLS": receiver.url, "LEADSCORE_WEBHOOK_SECRET": SECRET,
           "LEADSCORE_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
           "LEADSCORE_SMTP_TO": "sales@x.example", "LEADSCORE_LINK_SECRET": "s3cret"}
    leads = [f"w{i}" for i in range(160)]
    live = start(db_url, tmp_path, workers=4, env=env, models=world(tmp_path / "world"))
    try:
        subscribe([live.url], leads, mql=True)
        assert wait_until(lambda: len(receiver.counts) >= len(leads)
                          and box.distinct() >= len(leads), 180), (
            len(receiver.counts), box.distinct(), live.log.read_text()[-3000:])
        time.sleep(1.0)                      # a second delivery would show meanwhile
        assert live.stop(signal.SIGTERM) == 0, live.log.read_text()[-3000:]
    finally:
        if live.process.poll() is None:
            live.stop(signal.SIGKILL)
        receiver.stop()
    # Every handoff went out once to each target (the webhook and sales' e-mail), under its
    # outbox id.
    handoffs = rows(db_url, select(outbox.c.id, outbox.c.lead_id, outbox.c.status,
                                   outbox.c.last_error))
    assert sorted(h.lead_id for h in handoffs) == sorted(leads)
    assert {h.status for h in handoffs} == {"delivered"}, {h.last_error for h in handoffs}
    assert set(receiver.counts) == {h.id for h in handoffs}
    assert max(receiver.counts.values()) == 1, receiver.counts.most_common(3)
    assert receiver.bad_signatures == 0
    assert set(box.handoffs) == {h.id for h in handoffs}
    assert max(box.handoffs.values()) == 1, box.handoffs.most_common(3)
    # Every welcome e-mail went out once.
    assert set(box.keys) == {f"welcome|{lead}|1#0" for lead in leads}
    assert max(box.keys.values()) == 1, box.keys.most_common(3)
    sent = rows(db_url, select(actions.c.id, actions.c.status))
    assert {a.status for a in sent} == {"sent"} and len(sent) == len(leads)
    # More than one worker delivered each kind (the log's pid is the worker's).
    handoff_pids = {r["pid"] for r in log_records(live, "handoff delivered")}
    email_pids = {r["pid"] for r in log_records(live, "program action done")}
    assert len(handoff_pids) >= 2, handoff_pids
    assert len(email_pids) >= 2, email_pids
    assert not log_records(live, "scheduler round failed")
    assert not log_records(live, "dispatcher round failed")


def test_two_hosts_run_each_program_step_once(tmp_path: Path, db_url: str,
                                              inbox: tuple[Inbox, int]) -> None:
    box, smtp_port = inbox
    receiver = Receiver(SECRET).start()
    env = {"LEADSCORE_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
           "LEADSCORE_LINK_SECRET": "s3cret"}
    models = world(tmp_path / "world", BURST.format(url=receiver.url, secret=SECRET))
    leads = [f"h{i}" for i in range(120)]
    with ThreadPoolExecutor(2) as pool:      # the two hosts start side by side
        both = [pool.submit(start, db_url, tmp_path, env=env, models=models) for _ in "ab"]
    hosts = [future.result() for future in both]
    try:
        # In waves, so that steps come due on both hosts' watch.
        for at in range(0, len(leads), 30):
            subscribe([h.url for h in hosts], leads[at:at + 30], mql=False, threads=2)
            time.sleep(0.5)
        assert wait_until(lambda: box.distinct() >= 2 * len(leads)
                          and len(receiver.counts) >= len(leads), 180), (
            box.distinct(), len(receiver.counts))
        time.sleep(1.0)
        for live in hosts:
            assert live.stop(signal.SIGTERM) == 0, live.log.read_text()[-3000:]
    finally:
        for live in hosts:
            if live.process.poll() is None:
                live.stop(signal.SIGKILL)
        receiver.stop()
    # Each enrolment's journey: every step once, in order, keyed 0…5.
    found: dict[str, list[tuple[str, str]]] = {}
    for row in rows(db_url, select(journeys.c.key, journeys.c.enrolment_id, journeys.c.step,
                                   journeys.c.action).order_by(journeys.c.key)):
        found.setdefault(row.enrolment_id, []).append((row.key.rsplit("#", 1)[1], row.action))
    expected = [(str(n), a) for n, a in enumerate(
        ("send_email", "wait", "webhook", "wait", "send_email", "exit"))]
    assert set(found) == {f"burst|{lead}|1" for lead in leads}
    wrong = {e: j for e, j in found.items() if j != expected}
    assert not wrong, list(wrong.items())[:3]
    # Its e-mails and its webhook call arrived once each.
    assert set(box.keys) == {f"burst|{lead}|1#{n}" for lead in leads for n in (0, 4)}
    assert max(box.keys.values()) == 1, box.keys.most_common(3)
    assert set(receiver.counts) == {f"burst|{lead}|1#2" for lead in leads}
    assert max(receiver.counts.values()) == 1 and receiver.bad_signatures == 0
    # Both hosts ran steps, and neither hit a conflict.
    for live in hosts:
        assert log_records(live, "program steps run"), live.log.read_text()[-2000:]
        assert not log_records(live, "scheduler round failed"), live.log.read_text()[-3000:]
