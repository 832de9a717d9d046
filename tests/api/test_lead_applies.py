"""A lead no model applies to: `GET /api/leads/{id}` and the dashboard's lead page say which
model's `applies_to` left it out and what the lead's values are, instead of null scores alone."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from leadscore.api import create_app
from tests.api.conftest import ADMIN_TOKEN, settings_for

CONSUMERS = """\
name: consumers
applies_to: {traits.segment: {eq: consumer}}
fit:
  - {name: has email, when: {email: {exists: true}}, points: 10}
engagement:
  rules:
    - {name: pricing, page: /pricing*, points: 10}
"""


def test_a_lead_no_model_applies_to_says_why(db_url: str, tmp_path: Path,
                                              writer: tuple[str, str]) -> None:
    (tmp_path / "consumers.yaml").write_text(CONSUMERS)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with TestClient(create_app(settings_for(db_url, tmp_path))) as client:
        for user, segment in (("bo", "business"), ("cy", "consumer")):
            response = client.post("/v1/identify", auth=writer, json={
                "userId": user, "traits": {"segment": segment, "email": f"{user}@x.example"}})
            assert response.status_code == 200, response.text
        client.post("/v1/identify", auth=writer, json={"userId": "nn", "traits": {}})
        bo = client.get("/api/leads/bo", headers=admin).json()
        assert bo["score"] is None
        assert bo["applies"] == {"consumers": {
            "applies": False, "reason": "applies_to {traits.segment: {eq: consumer}}; "
                                        "the lead's traits.segment is 'business'"}}
        nn = client.get("/api/leads/nn", headers=admin).json()
        assert nn["applies"]["consumers"]["reason"].endswith("the lead has no traits.segment")
        cy = client.get("/api/leads/cy", headers=admin).json()
        assert cy["score"] == 10
        assert cy["applies"] == {"consumers": {"applies": True, "reason": None}}
        # The dashboard's lead page says the same.
        login = client.post("/dashboard/login", data={"token": ADMIN_TOKEN,
                                                      "next": "/dashboard/"},
                            follow_redirects=False)
        assert login.status_code == 303
        page = client.get("/dashboard/leads/bo").text
        assert "No model scores this lead" in page
        assert "the lead&#39;s traits.segment is &#39;business&#39;" in page
