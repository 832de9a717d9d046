"""Accounts in the service: a store (SQLite and PostgreSQL) with the `b2b` model, and Segment
messages at fixed times."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from leadscore.service import Service
from leadscore.timeutil import US_PER_DAY, iso, parse_timestamp

MODELS = Path(__file__).parent / "models"
NOW = parse_timestamp("2026-05-20T12:00:00Z")


@pytest.fixture
def service(db_url: str) -> Iterator[Service]:
    with Service.open(db_url, models_dir=MODELS, background=False) as opened:
        yield opened


def at(days_ago: float) -> str:
    return iso(NOW - round(days_ago * US_PER_DAY))


def identify(user: str, days_ago: float = 0, **traits: Any) -> dict[str, Any]:
    return {"type": "identify", "userId": user, "traits": traits, "timestamp": at(days_ago)}


def group(user: str, account: str, days_ago: float = 0, **traits: Any) -> dict[str, Any]:
    return {"type": "group", "userId": user, "groupId": account, "traits": traits,
            "timestamp": at(days_ago)}


def track(user: str, event: str, days_ago: float = 0, **properties: Any) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": event, "properties": properties,
            "timestamp": at(days_ago)}


def page(user: str, path: str, days_ago: float = 0) -> dict[str, Any]:
    return {"type": "page", "userId": user, "properties": {"path": path},
            "timestamp": at(days_ago)}
