"""Every error the API answers has one shape: {"ok": false, "error", "errors", "status"}."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from leadscore.api import create_app
from leadscore.config import Settings
from tests.api.conftest import WRITE_KEY


@pytest.fixture
def failing_client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)

    @app.get("/api/boom")
    def boom() -> None:
        raise RuntimeError("kaboom")

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def cases(admin: dict[str, str]) -> list[tuple[str, str, dict[str, object], int]]:
    bearer_write = {"Authorization": f"Bearer {WRITE_KEY}"}
    return [
        ("POST", "/v1/track", {"content": b"{", "auth": (WRITE_KEY, "")}, 400),
        ("GET", "/api/leads", {}, 401),
        ("GET", "/api/leads", {"headers": {"Authorization": "Bearer nope"}}, 401),
        ("GET", "/api/leads", {"headers": bearer_write}, 403),
        ("GET", "/api/leads/x", {"auth": (WRITE_KEY, "")}, 403),
        ("GET", "/api/leads/nobody", {"headers": admin}, 404),
        ("GET", "/api/leads/x", {"headers": admin, "params": {"model": "nope"}}, 404),
        ("GET", "/nowhere", {}, 404),
        ("POST", "/api/handoffs/nope/retry", {"headers": admin}, 404),
        ("GET", "/v1/track", {}, 405),
        ("DELETE", "/api/leads", {"headers": admin}, 405),
        ("POST", "/v1/track", {"content": b"x" * 40_000, "auth": (WRITE_KEY, "")}, 413),
        ("PUT", "/api/models/web", {"content": b"name: web\nfit: 3\n", "headers": admin}, 422),
        ("GET", "/api/leads", {"headers": admin, "params": {"limit": "many"}}, 422),
        ("GET", "/api/boom", {}, 500),
    ]


def test_every_error_has_the_one_shape(failing_client: TestClient,
                                       admin: dict[str, str]) -> None:
    seen = set()
    for method, path, kwargs, status in cases(admin):
        response = failing_client.request(method, path, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == status, (method, path, response.text)
        body = response.json()
        assert list(body) == ["ok", "error", "errors", "status"], body
        assert body["ok"] is False and body["status"] == status
        assert isinstance(body["error"], str) and body["error"]
        assert isinstance(body["errors"], list)
        assert response.headers["content-type"] == "application/json"
        seen.add(status)
    assert seen == {400, 401, 403, 404, 405, 413, 422, 500}


def test_a_500_names_no_internals_but_is_logged(failing_client: TestClient,
                                               caplog: pytest.LogCaptureFixture) -> None:
    body = failing_client.get("/api/boom").json()
    assert body["error"] == "internal error (RuntimeError); it was logged"
    assert "kaboom" in caplog.text


def test_a_bad_model_lists_each_problem_with_line_key_and_expectation(
        client: TestClient, admin: dict[str, str]) -> None:
    text = "name: web\ngrades: {A: 10}\nengagement:\n  rules:\n    - name: x\n      evnt: Y\n" \
           "      points: 1\n"
    response = client.put("/api/models/web", content=text, headers=admin)
    assert response.status_code == 422
    body = response.json()
    assert "the running version is unchanged" in body["error"]
    problem = next(p for p in body["errors"] if p["key"].endswith("evnt"))
    assert problem["line"] == 6 and problem["suggestion"] == "event"
    assert set(problem) == {"file", "line", "key", "message", "value", "expected",
                            "suggestion"}
    assert client.get("/api/models/web", headers=admin).json()["version"] == 1
    json.dumps(body)
