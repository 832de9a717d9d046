"""Fuzzing (issue #16, Deliver 7): schemathesis generates requests for every operation of the
OpenAPI document and sends them to a real `leadscore serve` on 127.0.0.1, with the write key
on the ingestion API and the admin token on the admin API; no answer may be a server error.

Bounded (`EXAMPLES` per operation) so that it runs in a few minutes. The document is the
app's own, so that operations are known at collection time; the server serves the same."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from leadscore.api import create_app
from tests.api.conftest import ADMIN_TOKEN, WRITE_KEY, settings_for
from tests.api.live import Live, serving

EXAMPLES = 15
schema = schemathesis.openapi.from_dict(create_app(settings_for("sqlite://")).openapi())
BASIC = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    env = {"LEADSCORE_RATE_LIMIT_PER_KEY": "0", "LEADSCORE_RATE_LIMIT_PER_IP": "0",
           "LEADSCORE_REFRESH_SECONDS": "0"}
    with serving(f"sqlite:///{folder / 'fuzz.db'}", folder, env=env) as server:
        yield server


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
