"""Who enters a program, live: only leads its model applies to, only on news (not imported
history, not events older than `enrol_max_age_hours` when they arrive); `init`'s example
programs are switched off; with no SMTP server, e-mails wait, queued, with one warning."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from leadscore.config import Settings, write_config
from leadscore.programs.definition import load_programs
from leadscore.programs.entry import history_count
from leadscore.programs.live import open_lifecycle
from leadscore.programs.scheduler import journey_rows
from leadscore.service import Service
from leadscore.store.lifecycle import actions
from leadscore.timeutil import iso, now_us
from tests.programs.world import MODEL, write_world

HOUR = 3_600_000_000
CONSUMERS_ONLY = MODEL.replace("name: shop\n", "name: shop\napplies_to: {segment: consumer}\n")


def _world(tmp_path: Path, db_url: str, model: str = MODEL, **settings: Any
           ) -> tuple[Service, Any]:
    root = write_world(tmp_path)
    (root / "models" / "shop.yaml").write_text(model)
    config = Settings(db=db_url, models_dir=str(root / "models"), link_secret="s3cret",
                      log_requests=False, **settings)
    service = Service.open(db_url, models_dir=root / "models", background=False)
    return service, open_lifecycle(service, config, folder=root)


def _subscribe(user: str, at: int, segment: str = "consumer") -> list[dict[str, Any]]:
    return [{"type": "identify", "userId": user, "messageId": f"i-{user}", "timestamp": iso(at),
             "traits": {"email": f"{user}@x.example", "first_name": user, "segment": segment}},
            {"type": "track", "userId": user, "messageId": f"t-{user}", "timestamp": iso(at),
             "event": "Newsletter Subscribed"}]


def _entered(service: Service) -> set[str]:
    with service.db.read() as connection:
        return {row["lead_id"] for row in journey_rows(connection, "welcome")}


def test_a_lead_enters_only_if_the_programs_model_applies(tmp_path: Path, db_url: str) -> None:
    service, life = _world(tmp_path, db_url, CONSUMERS_ONLY)
    try:
        now = now_us()
        service.ingest(_subscribe("ann", now) + _subscribe("bob", now, segment="business"))
        life.run_once()
        assert _entered(service) == {"ann"}
    finally:
        service.close()


def test_history_scores_but_enrols_no_one_and_is_counted(tmp_path: Path, db_url: str) -> None:
    service, life = _world(tmp_path, db_url)
    try:
        now = now_us()
        # Imported (even recent events): history.
        events = pa.table({"lead_id": ["imp"], "timestamp": [iso(now - HOUR)],
                           "type": ["track"], "event": ["Newsletter Subscribed"]})
        service.import_events(events, kind="events")
        # Sent live but two days old when it arrives: history; an hour old: news.
        service.ingest(_subscribe("old", now - 48 * HOUR) + _subscribe("new", now - HOUR))
        life.run_once()
        assert _entered(service) == {"new"}
        assert service.get_lead("imp", "shop")["engagement"] > 0     # it still scores
        with service.db.read() as connection:
            assert history_count(connection) == 2
    finally:
        service.close()


def test_init_writes_its_example_programs_switched_off(tmp_path: Path) -> None:
    write_config(tmp_path)
    text = (tmp_path / "programs" / "welcome.yaml").read_text()
    assert "enabled: false" in text and "enabled: true" in text      # and how to switch on
    (program,) = load_programs([tmp_path / "programs"], templates=tmp_path / "templates")
    assert program.enabled is False


def test_a_switched_off_program_enrols_no_one(tmp_path: Path, db_url: str) -> None:
    service, life = _world(tmp_path, db_url)
    try:
        root = tmp_path
        text = (root / "programs" / "welcome.yaml").read_text()
        (root / "programs" / "welcome.yaml").write_text("enabled: false\n" + text)
        config = Settings(db=db_url, models_dir=str(root / "models"), link_secret="s3cret")
        life = open_lifecycle(service, config, folder=root)
        service.ingest(_subscribe("ann", now_us()))
        life.run_once()
        assert _entered(service) == set()
    finally:
        service.close()


def test_without_smtp_emails_wait_queued_with_one_warning(
        tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    service, life = _world(tmp_path, db_url)       # no smtp_url
    try:
        service.ingest(_subscribe("ann", now_us()) + _subscribe("cy", now_us()))
        with caplog.at_level(logging.INFO, logger="leadscore.programs"):
            for _ in range(3):
                life.run_once()
        with service.db.read() as connection:
            statuses = [r.status for r in connection.execute(
                actions.select().where(actions.c.kind == "email"))]
        assert statuses == ["pending", "pending"]
        records = [r for r in caplog.records if (r.name == "leadscore.programs"
                   and r.levelno >= logging.WARNING) or "failed" in r.getMessage()]
        assert [r.levelname for r in records] == ["WARNING"], [r.getMessage() for r in records]
        assert "no SMTP server is configured" in records[0].getMessage()
    finally:
        service.close()


def test_simulate_enters_only_leads_the_model_applies_to(tmp_path: Path) -> None:
    import csv

    from typer.testing import CliRunner

    from leadscore.cli.app import app

    examples = Path(__file__).parents[2] / "examples"
    out = tmp_path / "journeys.csv"
    result = CliRunner().invoke(app, [
        "programs", "simulate", "--program", str(examples / "programs" / "welcome.yaml"),
        "--model", str(examples / "b2c-art-supplies.yaml"),
        "--events", str(examples / "data" / "events.csv"),
        "--leads", str(examples / "data" / "leads.csv"),
        "--content", str(examples / "content.yaml"),
        "--from", "2026-01-01T00:00:00Z", "--to", "2026-06-01T00:00:00Z", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "not entered (b2c-art-supplies does not apply): 8" in result.output
    leads = {row["lead_id"] for row in csv.DictReader(out.open())}
    assert leads and not any(lead.startswith("b-") for lead in leads)     # business leads
