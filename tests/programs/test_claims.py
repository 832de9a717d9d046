"""Several schedulers on one store at the same moment, as every worker and host runs one:
threads, each with its own `Service` (its own connections), start together on many due
enrolments, take them in small batches and deliver the e-mails in small claims through a real
SMTP server (aiosmtpd) on 127.0.0.1. Each step runs once (one journey row and one action per
enrolment and step, no transaction failing on a duplicate) and each e-mail arrives once, on
SQLite and on PostgreSQL (`FOR UPDATE SKIP LOCKED`)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from leadscore.programs.content import load_content
from leadscore.programs.definition import load_programs
from leadscore.programs.scheduler import Mailer, Scheduler
from leadscore.service import Service
from leadscore.store.lifecycle import actions, journeys
from leadscore.timeutil import US_PER_SECOND, iso, now_us
from tests.programs.inbox import Inbox, serving
from tests.programs.world import write_world

aiosmtpd = pytest.importorskip("aiosmtpd.controller")
WORKERS = 4
LEADS = 200


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    with serving(Inbox()) as served:
        yield served


@pytest.mark.slow
def test_schedulers_at_once_run_each_step_and_send_each_email_once(
        tmp_path: Path, db_url: str, inbox: tuple[Inbox, int]) -> None:
    box, smtp_port = inbox
    root = write_world(tmp_path / "world")
    services = [Service.open(db_url, models_dir=root / "models", background=False)
                for _ in range(WORKERS)]
    try:
        stamp = iso(now_us() - US_PER_SECOND)
        services[0].ingest([m for i in range(LEADS) for m in (
            {"type": "identify", "userId": f"p{i}", "messageId": f"i{i}", "timestamp": stamp,
             "traits": {"email": f"p{i}@x.example", "first_name": f"P{i}"}},
            {"type": "track", "userId": f"p{i}", "messageId": f"t{i}", "timestamp": stamp,
             "event": "Newsletter Subscribed"})])
        schedulers = [Scheduler(
            service, load_programs([root / "programs"], templates=root / "templates"),
            content=load_content(root / "content.yaml"), batch=10,
            mailer=Mailer(f"smtp://127.0.0.1:{smtp_port}", secret="s3cret"))
            for service in services]
        now = now_us()
        assert schedulers[0].enrol_from_log(now) == LEADS
        start = threading.Barrier(WORKERS)
        failures: list[BaseException] = []
        steps: list[int] = []

        def worker(scheduler: Scheduler) -> None:
            try:
                start.wait()
                steps.append(scheduler.tick(now))
                while scheduler.deliver(now, limit=5):
                    pass
            except BaseException as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=worker, args=(s,)) for s in schedulers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        assert not failures, failures
        # The step of each enrolment ran once: the e-mail and the wait that follows it.
        assert sum(steps) == 2 * LEADS
        with services[0].db.read() as connection:
            ran = connection.execute(select(journeys.c.enrolment_id, func.count()).group_by(
                journeys.c.enrolment_id)).all()
            statuses = Counter(connection.execute(select(actions.c.status)).scalars())
        assert {count for _, count in ran} == {2} and len(ran) == LEADS
    finally:
        for service in services:
            service.close()
    assert set(box.keys) == {f"welcome|p{i}|1#0" for i in range(LEADS)}
    assert max(box.keys.values()) == 1, box.keys.most_common(3)
    assert statuses == {"sent": LEADS}


def test_enrolment_reads_the_log_up_to_a_gap_that_may_still_fill() -> None:
    """On PostgreSQL a transaction may commit log rows after one that took later seqs: the
    rows past a gap wait while the gap is young (its transaction may be in flight), and go on
    once it is older than LOG_SETTLE_US (a rolled-back transaction leaves it for good)."""
    from types import SimpleNamespace

    from leadscore.store.leads import LOG_SETTLE_US, settled

    now = 1_000 * LOG_SETTLE_US

    def log(*rows: tuple[int, int]) -> list[Any]:
        return [SimpleNamespace(seq=seq, received_at=at) for seq, at in rows]

    young, old = now - 1, now - LOG_SETTLE_US - 1
    assert [r.seq for r in settled(log((5, young), (6, young)), 4, now)] == [5, 6]
    assert [r.seq for r in settled(log((5, young), (7, young), (8, young)), 4, now)] == [5]
    assert [r.seq for r in settled(log((6, young)), 4, now)] == []
    assert [r.seq for r in settled(log((5, old), (7, old), (8, young)), 4, now)] == [5, 7, 8]
    assert [r.seq for r in settled(log((5, old), (7, old), (9, young)), 4, now)] == [5, 7]
