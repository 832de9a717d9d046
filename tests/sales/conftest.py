"""Sales fixtures: a models folder with `routing.yaml` beside it, a client on the app with a
sales key, and helpers that make a lead cross the MQL threshold."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from leadscore.api import create_app
from leadscore.config import Settings, hash_token
from tests.api.conftest import ADMIN_TOKEN, WRITE_KEY

MODELS = Path(__file__).parent / "models"
SALES_KEY = "sk_test"
ROUTING = """\
teams:
  dach: {members: [anna@shop.example, ben@shop.example], capacity_per_day: 2}
  world: {members: [wes@shop.example]}
rules:
  - {when: {account.tier: enterprise}, owner: kim@shop.example}
  - {name: dach, when: {country: {in: [DE, AT, CH]}}, team: dach, accept_within_hours: 24,
     on_breach: escalate, manager: lea@shop.example}
  - {team: world}
feedback:
  reasons: [not a buyer, student, competitor, duplicate, bad timing]
  rejected_cooldown_days: 30
"""
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SALES = {"Authorization": f"Bearer {SALES_KEY}"}


def models_with_routing(tmp_path: Path, routing: str = ROUTING) -> Path:
    """A copy of the test models in tmp_path/models and routing.yaml beside it."""
    folder = tmp_path / "models"
    if not folder.exists():
        shutil.copytree(MODELS, folder)
    (tmp_path / "routing.yaml").write_text(routing, encoding="utf-8")
    return folder


@pytest.fixture
def sales_settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(db=db_url, models_dir=str(models_with_routing(tmp_path)),
                    write_keys=(WRITE_KEY,), admin_token_sha256=hash_token(ADMIN_TOKEN),
                    sales_key_sha256=hash_token(SALES_KEY), log_requests=False)


@pytest.fixture
def client(sales_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(sales_settings), raise_server_exceptions=False) as test_client:
        yield test_client


def send(client: Any, *messages: dict[str, Any]) -> None:
    response = client.post("/v1/batch", json={"batch": list(messages)},
                           auth=(WRITE_KEY, ""))
    assert response.status_code == 200, response.text
    assert not response.json().get("rejected"), response.json()


def qualify(client: Any, user: str, *, n: int = 0, **traits: Any) -> None:
    """Make `user` an MQL (10 for the e-mail + 30 for a demo = 40)."""
    send(client, {"type": "identify", "userId": user, "messageId": f"id-{user}-{n}",
                  "traits": {"email": f"{user}@example.org", **traits}},
         {"type": "track", "userId": user, "event": "Demo Requested",
          "messageId": f"demo-{user}-{n}"})


def handoffs_of(client: Any, lead: str) -> list[dict[str, Any]]:
    found = client.get("/api/handoffs", params={"limit": 1000}, headers=ADMIN).json()
    return [h for h in found["handoffs"] if h["lead_id"] == lead]
