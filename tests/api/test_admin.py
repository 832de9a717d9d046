"""The admin API: leads, models and versions, handoffs."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import MODELS, WRITE_KEY
from tests.api.test_ingest import track


def send(client: TestClient, *messages: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/batch", content=json.dumps({"batch": list(messages)}),
                           auth=(WRITE_KEY, ""))
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def people(client: TestClient) -> None:
    send(client,
         {"type": "identify", "userId": "ann", "traits": {"email": "ann@a.example",
                                                          "name": "Ann Arbor"}},
         {"type": "track", **track("ann", "Demo Requested")},
         {"type": "track", **track("ann", "Clicked")},
         {"type": "identify", "userId": "bob", "traits": {"email": "bob@rival.example"}},
         {"type": "track", **track("bob", "Demo Requested")},
         {"type": "track", **track("cat", "Clicked")},
         {"type": "group", "userId": "ann", "groupId": "acme",
          "traits": {"industry": "software"}})


def test_a_lead_answers_its_score_reasons_traits_and_account(
        client: TestClient, admin: dict[str, str]) -> None:
    people(client)
    ann = client.get("/api/leads/ann", params={"model": "web"}, headers=admin).json()
    assert ann["score"] >= 40 and ann["fit"] == 10 and ann["mql"] is True
    assert ann["grade"] == "A" and ann["temperature"] == "hot" and ann["stage"] in (
        "lead", "mql")
    assert {r["rule"] for r in ann["reasons"]} >= {"gave an e-mail", "requested a demo"}
    assert ann["traits"]["email"] == "ann@a.example"
    assert ann["account"] == {"industry": "software"}
    assert client.get("/api/leads/ann", headers=admin).json()["model"] == "web"


def test_leads_are_filtered_sorted_and_paginated_with_a_total(
        client: TestClient, admin: dict[str, str]) -> None:
    people(client)

    def ids(**params: Any) -> tuple[list[str], int]:
        response = client.get("/api/leads", params={"model": "web", **params}, headers=admin)
        assert response.status_code == 200, response.text
        body = response.json()
        return [row["lead_id"] for row in body["leads"]], body["total"]

    assert ids() == (["ann", "bob", "cat"], 3) or ids()[1] == 3
    assert ids(disqualified=True) == (["bob"], 1)
    assert ids(min_score=35, disqualified=False) == (["ann"], 1)
    assert ids(temperature=["hot"])[0] == ["ann"]
    assert ids(q="arbor")[0] == ["ann"]
    assert ids(sort="lead_id", descending=False, limit=2) == (["ann", "bob"], 3)
    assert ids(sort="lead_id", descending=False, limit=2, offset=2) == (["cat"], 3)
    bad = client.get("/api/leads", params={"sort": "height"}, headers=admin)
    assert bad.status_code == 422 and "sort" in bad.json()["error"]


def test_models_are_listed_uploaded_versioned_and_restored(
        client: TestClient, admin: dict[str, str]) -> None:
    people(client)
    listed = client.get("/api/models", headers=admin).json()["models"]
    assert [m["name"] for m in listed] == ["web"]
    text = (MODELS / "web.yaml").read_text().replace("points: 30", "points: 60")
    put = client.put("/api/models/web", content=text, headers=admin,
                     params={}, )
    assert put.status_code == 202, put.text
    assert put.json()["version"] == 2
    client.app.state.service.wait()  # type: ignore[attr-defined]
    status = client.get("/api/models/web", headers=admin).json()
    assert status["version"] == 2 and status["state"] == "ready"
    ann = client.get("/api/leads/ann", headers=admin).json()
    assert ann["engagement"] > 60
    versions = client.get("/api/models/web/versions", headers=admin).json()["versions"]
    assert len(versions) == 2
    restored = client.post("/api/models/web/restore/1", headers=admin)
    assert restored.status_code == 200, restored.text
    client.app.state.service.wait()  # type: ignore[attr-defined]
    assert client.get("/api/leads/ann", headers=admin).json()["engagement"] < 40
    missing = client.post("/api/models/web/restore/9", headers=admin)
    assert missing.status_code == 404, missing.text


def test_not_found_names_the_id_with_both_quotes(client: TestClient,
                                                 admin: dict[str, str]) -> None:
    for asked, said in (("nobody", "no lead 'nobody'"), ("o'brien", 'no lead "o\'brien"')):
        missing = client.get(f"/api/leads/{asked}", headers=admin)
        assert missing.status_code == 404 and missing.json()["error"] == said, missing.text


def test_handoffs_are_listed_with_status_and_can_be_retried(
        client: TestClient, admin: dict[str, str]) -> None:
    people(client)
    body = client.get("/api/handoffs", headers=admin).json()
    assert body["total"] == 1
    [handoff] = body["handoffs"]
    assert handoff["lead_id"] == "ann" and handoff["status"] == "pending"
    payload = handoff["payload"]
    for key in ("lead", "traits", "score", "grade", "stage", "reasons", "event"):
        assert key in payload or key in json.dumps(payload), key
    service = client.app.state.service  # type: ignore[attr-defined]
    [item] = service.claim_due(10)
    service.mark_failed(item.id, "HTTP 503 from the CRM", None)
    failed = client.get("/api/handoffs", params={"status": "failed"}, headers=admin).json()
    assert failed["handoffs"][0]["last_error"] == "HTTP 503 from the CRM"
    assert failed["handoffs"][0]["attempts"] == 1
    retried = client.post(f"/api/handoffs/{item.id}/retry", headers=admin)
    assert retried.status_code == 200 and retried.json()["status"] == "pending"
    assert [i.id for i in service.claim_due(10)] == [item.id]


def test_healthz_needs_no_token(client: TestClient) -> None:
    assert client.get("/healthz").json()["ok"] is True
