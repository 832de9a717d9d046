"""Fuzzing (issue #16, Deliver 7): schemathesis generates requests for every operation of the
OpenAPI document and sends them to a real `leadscore serve` on 127.0.0.1, with the write key
on the ingestion API and the admin token on the admin API; no answer may be a server error.

Bounded (`EXAMPLES` per operation) so that it runs in a few minutes. The document is the
app's own, so that operations are known at collection time; the server serves the same."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from leadscore.api import create_app
from tests.api.conftest import ADMIN_TOKEN, WRITE_KEY, settings_for
from tests.api.live import Live, serving
from tests.conftest import POSTGRES_URL

EXAMPLES = 15
schema = schemathesis.openapi.from_dict(create_app(settings_for("sqlite://")).openapi())
BASIC = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql",
                                                                marks=pytest.mark.postgres)])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Live]:
    """A server on a store with a few leads, on SQLite and on a fresh PostgreSQL schema."""
    folder: Path = tmp_path_factory.mktemp("fuzz")
    env = {"LEADSCORE_RATE_LIMIT_PER_KEY": "0", "LEADSCORE_RATE_LIMIT_PER_IP": "0",
           "LEADSCORE_REFRESH_SECONDS": "0"}
    with store_url(request.param, folder) as url, serving(url, folder, env=env) as server:
        seeded = httpx.post(server.url + "/v1/batch", auth=(WRITE_KEY, ""), json={"batch": [
            {"type": "identify", "userId": "ann", "traits": {"email": "ann@x.example"}},
            {"type": "track", "userId": "ann", "event": "Signed Up"},
            {"type": "page", "anonymousId": "anon-1", "name": "Home"}]})
        assert seeded.status_code == 200, seeded.text
        yield server


@contextmanager
def store_url(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'fuzz.db'}"
        return
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3, autocommit=True) as connection:
            schema_name = f"fuzz_{uuid.uuid4().hex[:12]}"
            connection.execute(f"CREATE SCHEMA {schema_name}")
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}")
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema_name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema_name} CASCADE")


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_operation_answers_a_server_error(case: schemathesis.Case, live: Live) -> None:
    path = case.operation.path
    auth = BASIC if path.startswith("/v1/") else f"Bearer {ADMIN_TOKEN}" \
        if path.startswith("/api/") else None
    headers = {**(case.headers or {})}
    if auth is not None:
        headers["Authorization"] = auth
    case.headers = headers
    case.call_and_validate(base_url=live.url, checks=[not_a_server_error], timeout=30)
