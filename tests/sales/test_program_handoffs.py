"""A program's `notify_sales` is routed like a score's handoff: its payload names the owner
the routing file picks, and the assignment is recorded once."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from leadscore.config import Settings
from leadscore.programs.live import open_lifecycle
from leadscore.service import Service
from leadscore.store import outbox
from leadscore.store.sales import assignments
from leadscore.timeutil import iso, now_us
from tests.programs.world import write_world

NOTIFY = """
name: welcome
model: shop
enter: {on: {event: Newsletter Subscribed}}
steps:
  - {id: tell-sales, notify_sales: {note: subscribed}}
"""
ROUTING = """
rules:
  - {when: {country: {in: [DE, AT]}}, owner: anna@shop.example}
  - {owner: kim@shop.example}
"""


def test_a_program_handoff_is_routed_to_an_owner(tmp_path: Path, db_url: str) -> None:
    root = write_world(tmp_path, NOTIFY)
    service = Service.open(db_url, models_dir=root / "models", background=False)
    try:
        service.sales.put_routing(ROUTING)
        settings = Settings(db=db_url, models_dir=str(root / "models"), link_secret="s3cret")
        life = open_lifecycle(service, settings, folder=root)
        now = now_us()
        service.ingest([
            {"type": "identify", "userId": "ann", "messageId": "i1", "timestamp": iso(now),
             "traits": {"country": "DE", "email": "ann@x.example"}},
            {"type": "track", "userId": "ann", "messageId": "t1", "timestamp": iso(now),
             "event": "Newsletter Subscribed"}])
        life.run_once()
        with service.db.read() as connection:
            items, _ = outbox.listing(connection, None, 10, 0)
            owners = connection.execute(select(assignments.c.lead_id, assignments.c.owner)
                                        ).all()
        handoffs = [i.payload for i in items if i.payload.get("source") == "program"]
        assert [(h["lead_id"], h["owner"]) for h in handoffs] == [("ann", "anna@shop.example")]
        assert [tuple(row) for row in owners] == [("ann", "anna@shop.example")]
    finally:
        service.close()
