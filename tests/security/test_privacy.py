"""Privacy (issue #16, Deliver 5): erase a person everywhere in one transaction, export all
that is stored of them, delete old events while scores keep what they earned; on SQLite and
PostgreSQL, through the admin API and the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from leadscore.api import create_app
from leadscore.cli.app import app as cli
from leadscore.programs.definition import load_programs
from leadscore.programs.scheduler import Scheduler
from leadscore.service import Service
from leadscore.store.privacy import person_tables
from leadscore.store.schema import events, leads
from leadscore.timeutil import iso
from tests.api.conftest import ADMIN_TOKEN, settings_for
from tests.programs.test_semantics import MODEL, TEMPLATE, utc

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PROGRAM = """
name: welcome
model: shop
enter: {on: {event: Newsletter Subscribed}}
steps:
  - {id: hand, notify_sales: {note: subscribed}}
  - {id: hello, send_email: {template: hello}}
"""
T0 = utc("2026-03-02T15:00:00")
ANN = ["ann", "ann-old", "anon-ann"]      # the person: a lead, and two merged into it
BOB = ["bob", "bob-old", "anon-bob"]


class World:
    def __init__(self, db_url: str, root: Path):
        for folder in ("models", "programs", "templates"):
            (root / folder).mkdir(exist_ok=True)
        (root / "models" / "shop.yaml").write_text(MODEL)
        (root / "templates" / "hello.txt").write_text(TEMPLATE)
        (root / "programs" / "welcome.yaml").write_text(PROGRAM)
        self.db_url, self.root = db_url, root
        self.service = Service.open(db_url, models_dir=root / "models", background=False)
        self.scheduler = Scheduler(self.service, load_programs(
            [root / "programs"], templates=root / "templates"))
        self.n = 0

    def send(self, *messages: dict[str, Any], at: int = T0) -> None:
        for message in messages:
            self.n += 1
            message.setdefault("messageId", f"m{self.n}")
            message.setdefault("timestamp", iso(at))
        # Arriving as it happens (the simulated clock): news that enrols, not history.
        assert not self.service.ingest(list(messages), received_at=at).rejected

    def person(self, user: str, email: str, anonymous: str) -> None:
        """A person seen anonymously, then identified, subscribed and enrolled."""
        self.send({"type": "page", "anonymousId": anonymous, "name": "Home"})
        self.send({"type": "identify", "userId": f"{user}-old", "traits": {
            "email": f"old.{email}"}})
        self.send({"type": "identify", "userId": user, "anonymousId": anonymous,
                   "traits": {"email": email, "first_name": user.title()}},
                  {"type": "alias", "userId": user, "previousId": f"{user}-old"},
                  {"type": "track", "userId": user, "event": "Newsletter Subscribed"},
                  {"type": "track", "userId": user, "event": "Demo Requested"})

    def rows_about(self, lead_ids: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        with self.service.db.read() as connection:
            for name in person_tables(connection):
                count = connection.exec_driver_sql(
                    f"SELECT count(*) FROM {name} WHERE lead_id IN "
                    f"({', '.join(repr(i) for i in lead_ids)})").scalar()
                if count:
                    found[name] = int(count or 0)
        return found


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    made = World(db_url, tmp_path)
    made.person("ann", "ann@x.example", "anon-ann")
    made.person("bob", "bob@x.example", "anon-bob")
    made.scheduler.enrol_from_log(T0)
    made.scheduler.tick(T0)
    yield made
    made.service.close()


def client_of(world: World) -> TestClient:
    settings = settings_for(world.db_url, models_dir=world.root / "models")
    return TestClient(create_app(settings, world.service))


def test_export_holds_everything_stored_of_the_person(world: World) -> None:
    with client_of(world) as client:
        answer = client.get("/api/leads/ann/export", headers=ADMIN)
        assert answer.status_code == 200, answer.text
        exported = answer.json()
        assert client.get("/api/leads/nobody/export", headers=ADMIN).status_code == 404
    assert exported["lead_id"] == "ann"
    assert sorted(exported["merged_leads"]) == ["ann-old", "anon-ann"]
    assert sorted(exported["user_ids"]) == ["ann", "ann-old"]
    assert exported["anonymous_ids"] == ["anon-ann"]
    assert {row["type"] for row in exported["events"]} == {"page", "identify", "alias",
                                                          "track"}
    assert "bob" not in json.dumps(exported["events"])
    assert {lead["traits"].get("email") for lead in exported["leads"]} - {None} == {
        "ann@x.example", "old.ann@x.example"}
    tables = exported["tables"]
    for name in ("identities", "scores", "lead_state", "enrolments", "program_journeys",
                 "outbox"):
        assert tables.get(name), name
    assert all(row["lead_id"] in ANN for rows in tables.values() for row in rows)


def test_forget_erases_the_person_and_every_merged_identity_only(world: World) -> None:
    before_bob = world.rows_about(BOB)
    assert {"scores", "enrolments", "program_journeys", "outbox", "identities"} <= set(
        world.rows_about(ANN))
    with client_of(world) as client:
        answer = client.delete("/api/leads/ann-old", headers=ADMIN)   # any id of the person
        assert answer.status_code == 200, answer.text
        assert answer.json()["lead_id"] == "ann" and set(answer.json()["leads"]) == {
            "ann", "ann-old", "anon-ann"}
        assert answer.json()["rows"]["events"] == 6
        assert client.get("/api/leads/ann", headers=ADMIN).status_code == 404
        assert client.delete("/api/leads/ann", headers=ADMIN).status_code == 404
        assert client.get("/api/leads/bob", headers=ADMIN).status_code == 200
        assert client.delete("/api/leads/bob", auth=("wk_test", "")).status_code in (401, 403)
    assert world.rows_about(ANN) == {}
    assert world.rows_about(BOB) == before_bob
    with world.service.db.read() as connection:
        stored = [json.dumps(m) for m in connection.execute(select(events.c.message)).scalars()]
        stored += [json.dumps(t) for t in connection.execute(select(leads.c.traits)).scalars()]
    assert stored and not any("ann" in text for text in stored)


def test_forget_leaves_a_suppression_of_every_address(world: World) -> None:
    suppressions = pytest.importorskip(
        "leadscore.store.suppressions", reason="the suppression list is secmail's (#16); "
                                               "this runs once both branches are merged")
    erased = world.service.forget("ann")
    assert erased.suppressed == 2
    with world.service.db.read() as connection:
        assert suppressions.is_suppressed(connection, "Ann@X.example ")
        assert suppressions.is_suppressed(connection, "old.ann@x.example")
        assert not suppressions.is_suppressed(connection, "bob@x.example")


def test_the_forget_and_export_commands(world: World, tmp_path: Path) -> None:
    runner = CliRunner()
    models = str(world.root / "models")
    out = tmp_path / "bob.json"
    result = runner.invoke(cli, ["export-lead", "bob", "--db", world.db_url, "--models", models,
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["lead_id"] == "bob"
    result = runner.invoke(cli, ["forget", "bob", "--db", world.db_url, "--models", models])
    assert result.exit_code == 0, result.output
    assert "forgot bob (3 lead(s))" in result.output
    assert world.rows_about(BOB) == {}
    result = runner.invoke(cli, ["forget", "bob", "--db", world.db_url, "--models", models])
    assert result.exit_code == 1 and "no lead 'bob'" in result.output


def test_old_events_are_deleted_and_scores_keep_what_they_earned(world: World) -> None:
    later = T0 + 40 * 86_400_000_000
    world.send({"type": "track", "userId": "cat", "event": "Demo Requested"}, at=later)
    before = {lead: world.service.get_lead(lead)["score"] for lead in ("ann", "bob", "cat")}
    with world.service.db.read() as connection:
        total = len(connection.execute(select(events.c.seq)).all())
    deleted = world.service.delete_old_events(30, now=later + 86_400_000_000)
    assert deleted == total - 1
    with world.service.db.read() as connection:
        assert connection.execute(select(events.c.user_id)).scalars().all() == ["cat"]
    assert {lead: world.service.get_lead(lead)["score"] for lead in before} == before
    assert world.service.delete_old_events(0) == 0


def test_the_server_sweep_and_the_retention_command(world: World) -> None:
    """`event_retention_days` in the server (the `Retention` thread, at start then hourly)
    and `leadscore retention`: events older than the days kept are gone, newer ones stay."""
    from leadscore.server import Retention

    recent = utc("2026-12-01T00:00:00")
    world.send({"type": "track", "userId": "cat", "event": "Demo Requested"}, at=recent)
    world.send({"type": "track", "userId": "dan", "event": "Demo Requested"},
               at=utc("2026-06-01T00:00:00"))

    def stored() -> set[str]:
        with world.service.db.read() as connection:
            return set(connection.execute(select(events.c.user_id)).scalars())

    sweep = Retention(world.service, 3650).start()     # ten years: nothing is that old
    sweep.stop()
    assert {"ann", "bob", "cat", "dan"} <= stored()
    days = (recent - T0) // 86_400_000_000 - 1      # T0's events are older than this
    assert Retention(world.service, days).sweep() > 0
    assert stored() >= {"cat", "dan"} and not stored() & {"ann", "bob"}
    runner = CliRunner()
    models = str(world.root / "models")
    result = runner.invoke(cli, ["retention", "--days", "1", "--db", world.db_url,
                                 "--models", models])
    assert result.exit_code == 0 and "deleted" in result.output, result.output
    result = runner.invoke(cli, ["retention", "--db", world.db_url, "--models", models])
    assert "every event is kept" in result.output    # event_retention_days defaults to 0
