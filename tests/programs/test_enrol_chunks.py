"""Enrolment reads the log in bounded chunks (each its own transaction, so that the write
lock is never held long after a burst of events) and still enrols on every event, once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from leadscore.programs.definition import load_programs
from leadscore.programs.scheduler import CURSOR, Scheduler
from leadscore.service import Service
from leadscore.store.lifecycle import enrolments, lifecycle_cursor
from leadscore.store.schema import events
from leadscore.timeutil import US_PER_SECOND, iso, now_us
from tests.programs.world import write_world

LEADS = 7


def test_enrolment_in_chunks_smaller_than_the_log_enrols_every_lead_once(
        tmp_path: Path, db_url: str) -> None:
    root = write_world(tmp_path / "world")
    with Service.open(db_url, models_dir=root / "models", background=False) as service:
        stamp = iso(now_us() - 60 * US_PER_SECOND)
        service.ingest([m for i in range(LEADS) for m in (
            {"type": "identify", "userId": f"p{i}", "messageId": f"i{i}", "timestamp": stamp,
             "traits": {"email": f"p{i}@x.example"}},
            {"type": "track", "userId": f"p{i}", "messageId": f"t{i}", "timestamp": stamp,
             "event": "Newsletter Subscribed"})])
        scheduler = Scheduler(service, load_programs([root / "programs"],
                                                     templates=root / "templates"))
        now = now_us()
        assert scheduler.enrol_from_log(now, limit=3) == LEADS      # 14 rows, 5 chunks
        assert scheduler.enrol_from_log(now, limit=3) == 0          # caught up
        with service.db.read() as connection:
            assert connection.execute(select(func.count()).select_from(enrolments)
                                      ).scalar() == LEADS


def test_a_chunk_another_worker_took_meanwhile_is_left_to_it(
        tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The log is read outside the write transaction; a worker that finds the cursor moved
    when it writes does nothing with what it read (the other enrolled those leads)."""
    root = write_world(tmp_path / "world")
    with Service.open(db_url, models_dir=root / "models", background=False) as service:
        stamp = iso(now_us() - 60 * US_PER_SECOND)
        service.ingest([{"type": "track", "userId": f"p{i}", "messageId": f"t{i}",
                         "timestamp": stamp, "event": "Newsletter Subscribed"}
                        for i in range(LEADS)])
        programs = load_programs([root / "programs"], templates=root / "templates")
        mine, other = Scheduler(service, programs), Scheduler(service, programs)
        now = now_us()
        write = service.db.write

        def raced(work: Any, **options: Any) -> Any:
            monkeypatch.setattr(service.db, "write", write)
            assert other.enrol_from_log(now) == LEADS     # wins between the read and the write
            return write(work, **options)

        monkeypatch.setattr(service.db, "write", raced)
        assert mine.enrol_from_log(now) == 0
        assert mine.enrol_from_log(now) == 0               # caught up
        with service.db.read() as connection:
            assert connection.execute(select(func.count()).select_from(enrolments)
                                      ).scalar() == LEADS


def test_without_programs_the_cursor_moves_and_nothing_else(tmp_path: Path,
                                                            db_url: str) -> None:
    root = write_world(tmp_path / "world")
    with Service.open(db_url, models_dir=root / "models", background=False) as service:
        service.ingest([{"type": "track", "userId": f"p{i}", "event": "Newsletter Subscribed"}
                        for i in range(LEADS)])
        scheduler = Scheduler(service, [])
        assert scheduler.enrol_from_log(limit=3) == 0
        with service.db.read() as connection:
            last = connection.execute(select(func.max(events.c.seq))).scalar()
            assert connection.execute(select(lifecycle_cursor.c.position).where(
                lifecycle_cursor.c.name == CURSOR)).scalar() == last
            assert connection.execute(select(func.count()).select_from(enrolments)
                                      ).scalar() == 0
