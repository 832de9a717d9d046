"""The server as a process: graceful shutdown, crash safety under SIGKILL, the dispatcher
inside it, JSON logs, `leadscore init`. Real processes, real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from leadscore.cli.service import commands
from leadscore.config import load_settings
from leadscore.service import Service
from leadscore.timeutil import US_PER_SECOND, iso, now_us
from tests.alerts.receiver import Receiver
from tests.api.conftest import MODELS, WRITE_KEY
from tests.api.live import Live, serving, start


def sender(live: Live, acked: list[str], stop: threading.Event, worker: int) -> None:
    """Send batches of 5 tracks until stopped or the server is gone; record what got a 2xx."""
    sequence = 0
    with httpx.Client(base_url=live.url, auth=(WRITE_KEY, ""), timeout=10) as client:
        while not stop.is_set():
            ids = [f"w{worker}-{sequence}-{i}" for i in range(5)]
            sequence += 1
            stamp = iso(now_us() - US_PER_SECOND)
            batch = [{"type": "track", "userId": f"lead-{worker}-{sequence % 7}",
                      "event": "Demo Requested" if i == 0 else "Clicked",
                      "messageId": mid, "timestamp": stamp} for i, mid in enumerate(ids)]
            try:
                response = client.post("/v1/batch", json={"batch": batch})
            except httpx.HTTPError:
                return
            if response.status_code == 200:
                acked.extend(ids)


def load(live: Live, seconds: float, workers: int = 4) -> tuple[list[str], threading.Event,
                                                                 list[threading.Thread]]:
    acked: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=sender, args=(live, acked, stop, w)) for w in
               range(workers)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    return acked, stop, threads


def resend_all(live: Live, acked: list[str]) -> dict[str, Any]:
    """Send every acknowledged message again: each must be a duplicate (it was stored)."""
    totals = {"accepted": 0, "duplicates": 0}
    stamp = iso(now_us() - US_PER_SECOND)
    with httpx.Client(base_url=live.url, auth=(WRITE_KEY, ""), timeout=30) as client:
        for start_at in range(0, len(acked), 100):
            batch = [{"type": "track", "userId": "someone", "event": "Clicked",
                      "messageId": mid, "timestamp": stamp}
                     for mid in acked[start_at:start_at + 100]]
            answer = client.post("/v1/batch", json={"batch": batch}).json()
            totals["accepted"] += answer["accepted"]
            totals["duplicates"] += answer["duplicates"]
    return totals


def scores(db: str, as_of: str) -> dict[str, tuple[float, float, str]]:
    with Service.open(db) as service:
        rows, _ = service.list_leads(model="web", limit=1000)
        out = {}
        for row in rows:
            lead = service.get_lead(row["lead_id"], "web", as_of=as_of)
            out[row["lead_id"]] = (round(lead["score"], 9), round(lead["fit"], 9),
                                   lead["stage"])
        return out


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_mid_stream_loses_no_acknowledged_event(tmp_path: Path, workers: int,
                                                        db_url: str) -> None:
    db = db_url
    live = start(db, tmp_path, workers=workers)
    acked, stop, threads = load(live, 1.5)
    live.stop(signal.SIGKILL)
    stop.set()
    for thread in threads:
        thread.join()
    assert len(acked) >= 50
    with serving(db, tmp_path) as again:
        totals = resend_all(again, acked)
    assert totals == {"accepted": 0, "duplicates": len(acked)}
    as_of = iso(now_us())
    incremental = scores(db, as_of)
    with Service.open(db) as service:
        service.rescore()
    assert scores(db, as_of) == incremental and len(incremental) > 10


@pytest.mark.slow
def test_sigterm_is_graceful_and_loses_no_acknowledged_event(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'term.db'}"
    live = start(db, tmp_path)
    acked, stop, threads = load(live, 1.0)
    code = live.stop(signal.SIGTERM)
    stop.set()
    for thread in threads:
        thread.join()
    assert code == 0, live.log.read_text()[-2000:]
    lines = [json.loads(line) for line in live.log.read_text().splitlines()
             if line.startswith("{")]
    messages = [line["msg"] for line in lines]
    assert "leadscore starting" in messages and "leadscore stopped" in messages
    assert all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    with serving(db, tmp_path) as again:
        assert resend_all(again, acked) == {"accepted": 0, "duplicates": len(acked)}


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_the_server_delivers_handoffs_to_webhooks(tmp_path: Path, workers: int,
                                                  db_url: str) -> None:
    receiver = Receiver("hook-secret").start()
    env = {"LEADSCORE_WEBHOOK_URLS": receiver.url, "LEADSCORE_WEBHOOK_SECRET": "hook-secret"}
    try:
        with serving(db_url, tmp_path, workers=workers,
                     env=env) as live, httpx.Client(base_url=live.url,
                                                    auth=(WRITE_KEY, "")) as client:
            for i in range(5):
                client.post("/v1/identify", json={"userId": f"p{i}",
                                                  "traits": {"email": f"p{i}@x.example"}})
                client.post("/v1/track", json={"userId": f"p{i}", "event": "Demo Requested"})
            assert receiver.wait_for(5, timeout=10)
            with live.admin() as admin:
                time.sleep(0.3)
                listed = admin.get("/api/handoffs", params={"status": "delivered"}).json()
    finally:
        receiver.stop()
    assert listed["total"] == 5
    assert receiver.bad_signatures == 0 and max(receiver.counts.values()) == 1
    body = next(iter(receiver.bodies.values()))
    assert {"lead", "score", "reasons"} <= set(body) or "reasons" in json.dumps(body)


def test_init_writes_the_config_and_prints_the_keys(tmp_path: Path) -> None:
    app = typer.Typer()
    app.add_typer(commands)

    @app.command("version")
    def version() -> None:  # a second command keeps typer from flattening the app
        pass

    result = CliRunner().invoke(app, ["init", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    write_key = next(line.split()[-1] for line in result.output.splitlines()
                     if line.startswith("write key:"))
    token = next(line.split()[-1] for line in result.output.splitlines()
                 if line.startswith("admin token:"))
    settings = load_settings(tmp_path / "leadscore.toml", env={})
    assert settings.is_write_key(write_key) and settings.is_admin_token(token)
    # segments/, programs/ and templates/ beside models/, with a welcome program that loads.
    from leadscore.programs.definition import load_programs

    (welcome,) = load_programs([tmp_path / "programs"], templates=tmp_path / "templates")
    assert welcome.name == "welcome" and (tmp_path / "models" / f"{welcome.model}.yaml").exists()
    assert (tmp_path / "segments" / "engaged-painters.yaml").exists()
    assert (tmp_path / "content.yaml").exists()
    again = CliRunner().invoke(app, ["init", "--dir", str(tmp_path)])
    assert again.exit_code == 1 and "exists already" in again.output


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """`serve` configures logging for the whole process (JSON lines, `leadscore` no longer
    propagating to the root): undo it, or later tests' `caplog` would see nothing."""
    names = ("", "leadscore", "uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {name: (list(logger.handlers), logger.level, logger.propagate)
             for name in names for logger in [logging.getLogger(name)]}
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.mark.usefixtures("restore_logging")
def test_serve_refuses_a_missing_models_folder_in_one_line(tmp_path: Path) -> None:
    app = typer.Typer()
    app.add_typer(commands)
    app.command("version")(lambda: None)
    result = CliRunner().invoke(app, ["serve", "--db", f"sqlite:///{tmp_path}/x.db",
                                      "--models", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "no model file" in result.output and "Traceback" not in result.output


def test_import_and_rescore_go_through_the_service(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    stamp = iso(now_us() - 60 * US_PER_SECOND)
    events.write_text("\n".join(json.dumps(m) for m in [
        {"type": "identify", "userId": "ann", "traits": {"email": "a@x.example"},
         "timestamp": stamp},
        {"type": "track", "userId": "ann", "event": "Demo Requested", "timestamp": stamp,
         "messageId": "i1"}]) + "\n")
    app = typer.Typer()
    app.add_typer(commands)
    db = f"sqlite:///{tmp_path / 'import.db'}"
    runner = CliRunner()
    imported = runner.invoke(app, ["import", str(events), "--db", db, "--models", str(MODELS)])
    assert imported.exit_code == 0, imported.output
    rescored = runner.invoke(app, ["rescore", "--db", db, "--models", str(MODELS)])
    assert rescored.exit_code == 0, rescored.output
    assert "rescored: 1" in rescored.output
    with Service.open(db) as service:
        ann = service.get_lead("ann", "web")
    assert ann["fit"] == 10 and 29.9 < ann["engagement"] <= 30


def test_import_says_which_rows_went_message_by_message_and_why(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    stamp = iso(now_us() - 60 * US_PER_SECOND)
    events.write_text("\n".join(json.dumps(m) for m in [
        {"type": "track", "anonymousId": "v-1", "event": "Demo Requested", "timestamp": stamp},
        {"type": "track", "userId": "ann", "event": "Demo Requested", "timestamp": stamp},
        {"type": "alias", "userId": "ann", "previousId": "v-1", "timestamp": stamp}]) + "\n")
    app = typer.Typer()
    app.add_typer(commands)
    db = f"sqlite:///{tmp_path / 'import.db'}"
    imported = CliRunner().invoke(app, ["import", str(events), "--db", db, "--models",
                                        str(MODELS)])
    assert imported.exit_code == 0, imported.output
    assert "by_message 3" in imported.output
    assert "rows 1-3 imported message by message (row 3: an alias merges leads)" in \
        imported.output.replace("\n", " ")


@pytest.mark.slow
def test_the_server_refreshes_the_listing_as_scores_decay(tmp_path: Path) -> None:
    """A lead hot when its last event was scored, months ago, is cold in `GET /api/leads`
    once the server's refresher has run; nothing was sent to it meanwhile."""
    from leadscore import load_model

    db = f"sqlite:///{tmp_path / 'decay.db'}"
    then = now_us() - 120 * 86_400 * US_PER_SECOND          # 4 half-lives of `web`
    with Service.open(db, models=[load_model(MODELS / "web.yaml")],
                      background=False) as service:
        service.ingest([{"type": "track", "userId": "ann", "event": "Demo Requested",
                         "timestamp": iso(then)}], received_at=then)
    with serving(db, tmp_path, env={"LEADSCORE_REFRESH_SECONDS": "0.2"}) as live, \
            live.admin() as admin:
        deadline, listed = time.monotonic() + 20, None
        while time.monotonic() < deadline:
            listed = admin.get("/api/leads", params={"temperature": "cold"}).json()
            if listed["total"]:
                break
            time.sleep(0.1)
        assert listed is not None and [r["lead_id"] for r in listed["leads"]] == ["ann"]
        assert admin.get("/api/leads", params={"temperature": "hot"}).json()["total"] == 0


def test_refresh_and_durability_settings() -> None:
    from leadscore.config import ConfigError
    from leadscore.server import Refresher

    settings = load_settings(env={"LEADSCORE_REFRESH_SECONDS": "0",
                                  "LEADSCORE_SQLITE_SYNCHRONOUS": "NORMAL"})
    assert (settings.refresh_seconds, settings.sqlite_synchronous) == (0.0, "normal")
    assert Refresher(None, settings.refresh_seconds).start()._thread is None   # 0: off
    assert load_settings(env={}).sqlite_synchronous == "full"
    with pytest.raises(ConfigError, match="sqlite_synchronous = 'off': expected full or normal"):
        load_settings(env={"LEADSCORE_SQLITE_SYNCHRONOUS": "off"})
