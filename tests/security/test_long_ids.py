"""Ids may be 512 characters: on PostgreSQL `enrolments.id` was varchar(200) (one long userId
that subscribed stopped every program enrolment) and `outbox.id` varchar(64) (notify_sales
failed for realistic ids). On SQLite and PostgreSQL, from a store made by the migrations."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from leadscore.programs.definition import load_programs
from leadscore.programs.scheduler import Scheduler
from leadscore.service import Service
from leadscore.store import outbox
from leadscore.store.lifecycle import enrolments, journeys
from leadscore.timeutil import iso
from tests.programs.test_semantics import MODEL, TEMPLATE, utc

PROGRAM = """
name: welcome-and-hand-over-to-sales-when-they-subscribe
model: shop
enter: {on: {event: Newsletter Subscribed}}
steps:
  - {id: hand-over-to-the-sales-team-at-once, notify_sales: {note: subscribed}}
  - {id: hello, send_email: {template: hello}}
"""


def test_a_512_character_user_id_enrols_and_is_handed_to_sales(db_url: str,
                                                                tmp_path: Path) -> None:
    for folder in ("models", "programs", "templates"):
        (tmp_path / folder).mkdir()
    (tmp_path / "models" / "shop.yaml").write_text(MODEL)
    (tmp_path / "templates" / "hello.txt").write_text(TEMPLATE)
    (tmp_path / "programs" / "welcome.yaml").write_text(PROGRAM)
    service = Service.open(db_url, models_dir=tmp_path / "models", background=False)
    try:
        scheduler = Scheduler(service, load_programs([tmp_path / "programs"],
                                                     templates=tmp_path / "templates"))
        t0 = utc("2026-03-02T15:00:00")
        long_id = "u" * 512
        result = service.ingest([
            {"type": "identify", "userId": long_id, "messageId": "i1", "timestamp": iso(t0),
             "traits": {"email": "long@x.example", "first_name": "Lo"}},
            {"type": "track", "userId": long_id, "event": "Newsletter Subscribed",
             "messageId": "t1", "timestamp": iso(t0)},
            {"type": "track", "userId": "short", "event": "Newsletter Subscribed",
             "messageId": "t2", "timestamp": iso(t0)}], received_at=t0)   # news, not history
        assert not result.rejected
        scheduler.enrol_from_log(t0)
        scheduler.tick(t0)
        with service.db.read() as connection:
            enrolled = connection.execute(select(enrolments.c.lead_id)).scalars().all()
            steps = connection.execute(select(journeys.c.lead_id, journeys.c.action)).all()
            items, _ = outbox.listing(connection, None, 10, 0)
        assert sorted(enrolled) == sorted([long_id, "short"])
        assert (long_id, "notify_sales") in steps
        assert long_id in {item.payload.get("lead_id") for item in items}
    finally:
        service.close()


def test_a_store_from_before_version_9_takes_long_program_handoff_ids(db_url: str) -> None:
    """A PostgreSQL store migrated to version 8 has `sales_assignments.handoff_id`
    varchar(64): a program's handoff id (its journey key, holding the lead id) did not fit."""
    from sqlalchemy import delete

    from leadscore.store import Database, migrate
    from leadscore.store.sales import assignments
    from leadscore.store.schema import schema_version

    db = Database(db_url)
    try:
        migrate(db)
        with db.begin() as connection:
            if db.dialect == "postgresql":     # as version 6 made it
                connection.exec_driver_sql("ALTER TABLE sales_assignments ALTER COLUMN "
                                           "handoff_id TYPE varchar(64)")
            connection.execute(delete(schema_version).where(schema_version.c.version >= 9))
        migrate(db)
        key = "welcome|" + "u" * 512 + "#0"
        with db.begin() as connection:
            connection.execute(assignments.insert().values(
                handoff_id=key, lead_id="u" * 512, kind="lead", assigned_at=0, status="open"))
            assert connection.execute(select(assignments.c.handoff_id)).scalar() == key
    finally:
        db.close()
