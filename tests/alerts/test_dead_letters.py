"""Webhooks that cannot be abused or lost in silence (#16): a delivery that failed
`delivery_max_attempts` times is a dead letter — shown on the dashboard and the API, no longer
retried — until someone retries it; a webhook without a secret is refused at config time.

Against a real `leadscore serve` process and a real HTTP receiver."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from leadscore.config import ConfigError, load_settings
from leadscore.errors import ModelError
from leadscore.programs.definition import load_programs
from tests.alerts.receiver import Receiver
from tests.api.conftest import ADMIN_TOKEN, WRITE_KEY
from tests.api.live import serving


def _wait(predicate: object, timeout: float = 20.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_a_delivery_failing_n_times_is_a_dead_letter_until_retried(tmp_path: Path,
                                                                   db_url: str) -> None:
    """Before: a failing delivery was retried for ever, with nothing to show for it."""
    receiver = Receiver("hook-secret").start()
    receiver.fail_with = 503
    env = {"LEADSCORE_WEBHOOK_URLS": receiver.url, "LEADSCORE_WEBHOOK_SECRET": "hook-secret",
           "LEADSCORE_DELIVERY_MAX_ATTEMPTS": "3", "LEADSCORE_RETRY_BASE_SECONDS": "0.05",
           "LEADSCORE_RETRY_MAX_SECONDS": "0.1"}
    try:
        with serving(db_url, tmp_path, env=env) as live, live.admin() as admin:
            with httpx.Client(base_url=live.url, auth=(WRITE_KEY, "")) as client:
                client.post("/v1/identify", json={"userId": "p1",
                                                  "traits": {"email": "p1@x.example"}})
                client.post("/v1/track", json={"userId": "p1", "event": "Demo Requested"})

            def dead() -> list[dict[str, object]]:
                return list(admin.get("/api/handoffs", params={"status": "dead"}).json()[
                    "handoffs"])

            def handoff(key: object) -> dict[str, object]:
                return next(h for h in admin.get("/api/handoffs").json()["handoffs"]
                            if h["id"] == key)

            assert _wait(lambda: len(dead()) == 1)
            [letter] = dead()
            assert letter["attempts"] == 3 and "503" in str(letter["last_error"])
            time.sleep(1.0)                       # no attempt after the third
            assert handoff(letter["id"])["attempts"] == 3
            # The dashboard says so.
            with httpx.Client(base_url=live.url) as browser:
                browser.post("/dashboard/login", data={"token": ADMIN_TOKEN})
                page = browser.get("/dashboard/handoffs").text
            assert 'id="dead-letters"' in page and "1 dead letter" in page
            # Fixed receiver, retried by hand: delivered once, correctly signed.
            receiver.fail_with = None
            assert admin.post(f"/api/handoffs/{letter['id']}/retry").status_code == 200
            assert _wait(lambda: handoff(letter["id"])["status"] == "delivered")
            assert receiver.counts[str(letter["id"])] == 1 and receiver.bad_signatures == 0
    finally:
        receiver.stop()


def test_a_webhook_without_a_secret_is_refused_at_config_time(tmp_path: Path) -> None:
    """Before: an empty secret signed every delivery with the empty key."""
    with pytest.raises(ConfigError, match="has no secret"):
        load_settings(env={"LEADSCORE_WEBHOOK_URLS": "https://crm.example/hook"})
    config = tmp_path / "leadscore.toml"
    config.write_text('[[webhooks]]\nurl = "https://crm.example/hook"\nsecret = ""\n')
    with pytest.raises(ConfigError, match="has no secret"):
        load_settings(config, env={})
    programs = tmp_path / "programs"
    programs.mkdir()
    (programs / "p.yaml").write_text(
        "name: p\nenter: {on: {event: X}}\nsteps:\n"
        "  - webhook: {url: 'https://crm.example/hook'}\n")
    with pytest.raises(ModelError, match="needs a secret"):
        load_programs([programs])
