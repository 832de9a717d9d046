"""Enrolment reads the log in bounded chunks (each its own transaction, so that the write
lock is never held long after a burst of events) and still enrols on every event, once."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from leadscore.programs.definition import load_programs
from leadscore.programs.scheduler import Scheduler
from leadscore.service import Service
from leadscore.store.lifecycle import enrolments
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
