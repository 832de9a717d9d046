"""Filtered events in the service's log (#19): stored with the filter that caught them,
never scored — not when they arrive, not when a lead is scored afresh from its log — and
kept as decided: a later change of the settings judges new events only. A store of schema
version 9 gains the column (its events stay scored). SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import delete, inspect, select

from leadscore.filters import Filters
from leadscore.model.loader import load_model
from leadscore.service import Service
from leadscore.store import LATEST, migrate
from leadscore.store.schema import events, schema_version
from leadscore.timeutil import iso, now_us

MODEL = load_model("m.yaml", text="""\
name: m
engagement:
  rules:
    - {name: pricing, page: /pricing, points: 10}
""")
MODEL_V2 = load_model("m.yaml", text="""\
name: m
engagement:
  rules:
    - {name: pricing, page: /pricing, points: 20}
""")
CRAWLER = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def visit(message_id: str, agent: str | None = None) -> dict[str, object]:
    return {"type": "page", "userId": "ann", "messageId": message_id,
            "timestamp": iso(now_us()), "properties": {"path": "/pricing"},
            **({"context": {"userAgent": agent}} if agent else {})}


def flags(service: Service) -> dict[str, str | None]:
    with service.db.read() as connection:
        return dict(connection.execute(select(events.c.message_id, events.c.filtered)).all())


def test_a_verdict_is_kept_as_decided_and_never_scored(db_url: str) -> None:
    with Service.open(db_url, models=[MODEL], background=False) as service:
        assert service.ingest([visit("p1"), visit("p2", CRAWLER)]).accepted == 2
        assert flags(service) == {"p1": None, "p2": "bots"}
        assert service.get_lead("ann")["engagement"] == 10
    # The crawler list switched off: new crawler visits score, the stored verdict stands.
    with Service.open(db_url, models=[MODEL_V2], background=False,
                      filters=Filters(bots=False)) as service:
        assert service.get_lead("ann")["engagement"] == 20       # rescored from the log
        service.ingest([visit("p3", CRAWLER)])
        assert flags(service) == {"p1": None, "p2": "bots", "p3": None}
        assert service.get_lead("ann")["engagement"] == 40
        assert service.filtered_counts() == {"bots": 1}


def test_a_lead_who_turns_out_to_be_staff_loses_what_its_visits_earned(db_url: str) -> None:
    staff = Filters(internal_domains=["shop.example"])
    with Service.open(db_url, models=[MODEL], background=False, filters=staff) as service:
        service.ingest([{**visit("p1"), "userId": None, "anonymousId": "anon"}])
        assert service.get_lead("anon")["engagement"] == 10
        service.ingest([{"type": "identify", "userId": "bob", "anonymousId": "anon",
                         "messageId": "i1", "timestamp": iso(now_us()),
                         "traits": {"email": "bob@shop.example"}}])
        assert service.get_lead("bob")["engagement"] == 0
        assert flags(service)["p1"] == "internal_domains"
        service.ingest([{**visit("p2"), "userId": "bob"}])
        assert service.get_lead("bob")["engagement"] == 0
        # A new address, not ours: the visits count again (as batch would score them).
        service.ingest([{"type": "identify", "userId": "bob", "messageId": "i2",
                         "timestamp": iso(now_us()), "traits": {"email": "bob@home.example"}}])
        assert service.get_lead("bob")["engagement"] == 20
        assert flags(service)["p1"] is None and service.filtered_counts() == {}


def test_version_10_adds_the_filter_column_to_a_store_of_version_9(db_url: str) -> None:
    with Service.open(db_url, models=[MODEL], background=False) as service:
        service.ingest([visit("p1")])
        with service.db.begin() as connection:      # back to version 9, as such a store was
            connection.exec_driver_sql("DROP INDEX ix_events_filtered")
            connection.exec_driver_sql("ALTER TABLE events DROP COLUMN filtered")
            connection.execute(delete(schema_version).where(schema_version.c.version >= 10))
        assert migrate(service.db) == LATEST
        with service.db.read() as connection:
            found = inspect(connection)
            assert "filtered" in {c["name"] for c in found.get_columns("events")}
            assert "ix_events_filtered" in {i["name"] for i in found.get_indexes("events")}
    with Service.open(db_url, models=[MODEL_V2], background=False) as service:
        assert flags(service) == {"p1": None}
        assert service.get_lead("ann")["engagement"] == 20
