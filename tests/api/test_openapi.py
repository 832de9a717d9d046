"""The OpenAPI document is served, valid, and lists every route with its security."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from leadscore.api.app import ROUTERS

SALES_KEY_ROUTES = {("GET", "/api/leads"), ("GET", "/api/leads/{lead_id}"),
                    ("POST", "/api/leads/{lead_id}/feedback"), ("GET", "/api/sales/handoffs")}


def test_openapi_lists_every_route_with_its_security_scheme(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["writeKey"] == {"type": "http", "scheme": "basic",
                                   "description": schemes["writeKey"]["description"]}
    assert schemes["adminToken"]["type"] == "http"
    assert schemes["adminToken"]["scheme"] == "bearer"
    assert schemes["salesKey"]["scheme"] == "bearer"
    routes = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    routes += [r for r in client.app.routes  # type: ignore[attr-defined]
               if isinstance(r, APIRoute) and r.include_in_schema]
    assert len(routes) == 61
    assert {r.path for r in routes} == set(document["paths"])
    for route in routes:
        for method in route.methods:
            operation = document["paths"][route.path_format][method.lower()]
            security = operation.get("security")
            if route.path.startswith(("/v1/", "/beacon/v1/")):
                assert security == [{"writeKey": []}], route.path
                body = operation["requestBody"]["content"]["application/json"]["schema"]
                assert body["type"] == "object"
            elif (method, route.path) in SALES_KEY_ROUTES:   # the sales key too (DESIGN §6)
                assert security == [{"adminToken": []}, {"salesKey": []}], route.path
                assert "401" in operation["responses"] and "403" in operation["responses"]
            elif route.path.startswith("/api/"):
                assert security == [{"adminToken": []}], route.path
                assert "401" in operation["responses"] and "403" in operation["responses"]
            else:
                assert security is None, route.path
    for path in ("/v1/track", "/v1/batch", "/v1/import", "/api/leads/{lead_id}",
                 "/api/accounts", "/api/accounts/{account_id}",
                 "/api/models/{name}/restore/{version}", "/api/handoffs/{handoff_id}/retry",
                 "/api/emails/suppressions", "/api/emails/resubscribe", "/api/filters",
                 "/healthz"):
        assert path in document["paths"]
    error = document["components"]["schemas"]["ErrorBody"]
    assert set(error["properties"]) == {"ok", "error", "errors", "status"}


def test_openapi_document_validates(client: TestClient) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(client.get("/openapi.json").json())
