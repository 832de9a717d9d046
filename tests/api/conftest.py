"""API fixtures: settings with one write key and an admin token, and a client on the app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from leadscore.api import create_app
from leadscore.config import Settings, hash_token

WRITE_KEY = "wk_test"
ADMIN_TOKEN = "adm_test"
MODELS = Path(__file__).parent / "models"


def settings_for(db: str, models_dir: Path | str = MODELS, **changes: Any) -> Settings:
    return Settings(db=db, models_dir=str(models_dir), write_keys=(WRITE_KEY,),
                    admin_token_sha256=hash_token(ADMIN_TOKEN), log_requests=False, **changes)


@pytest.fixture
def settings(db_url: str) -> Settings:
    """On SQLite and on PostgreSQL (tests/conftest.py's `db_url`)."""
    return settings_for(db_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def writer() -> tuple[str, str]:
    return (WRITE_KEY, "")
