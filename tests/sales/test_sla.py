"""SLAs on SQLite and PostgreSQL: a handoff not answered within `accept_within_hours` is
escalated to the manager, reassigned to the team's next free member, or recycled — as its
rule says; an answer in time (from the API or a CRM's track event) closes it; the open
handoffs list puts breached SLAs first and gives the median time to accept per owner."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from leadscore.sales.sla import open_handoffs, sweep
from leadscore.timeutil import now_us
from tests.sales.conftest import ADMIN, SALES, handoffs_of, qualify, send

HOUR = 3_600_000_000
ROUTING = """\
teams:
  dach: {members: [anna@shop.example, ben@shop.example]}
rules:
  - {when: {country: DE}, team: dach, accept_within_hours: 2, on_breach: escalate,
     manager: lea@shop.example}
  - {when: {country: AT}, team: dach, accept_within_hours: 2, on_breach: reassign}
  - {when: {country: CH}, team: dach, accept_within_hours: 2, on_breach: recycle}
  - {team: dach}
"""


@pytest.fixture
def routed(client: TestClient) -> TestClient:
    assert client.put("/api/routing", headers=ADMIN, content=ROUTING).status_code == 200
    return client


def run_sweep(client: TestClient, hours: float) -> dict[str, int]:
    service: Any = client.app.state.service     # type: ignore[attr-defined]
    return sweep(service.db, service.ingest, now_us() + round(hours * HOUR))


def test_a_breached_sla_is_escalated_to_the_manager(routed: TestClient) -> None:
    qualify(routed, "de1", country="DE")
    assert run_sweep(routed, 1) == {}                    # within the 2 hours
    assert run_sweep(routed, 3) == {"escalate": 1}
    first, second = sorted(handoffs_of(routed, "de1"), key=lambda h: h["id"])
    assert second["id"] == first["id"] + "-escalated"
    assert second["payload"]["owner"] == "lea@shop.example"
    assert second["payload"]["sla"]["owner_before"] == first["payload"]["owner"]
    assert run_sweep(routed, 4) == {}                    # once


def test_a_breached_sla_is_reassigned_to_the_next_free_member(routed: TestClient) -> None:
    qualify(routed, "at1", country="AT")
    before = handoffs_of(routed, "at1")[0]["payload"]["owner"]
    assert run_sweep(routed, 3) == {"reassign": 1}
    after = [h for h in handoffs_of(routed, "at1") if h["id"].endswith("-reassigned")]
    assert after[0]["payload"]["owner"] not in (None, before)
    assert after[0]["payload"]["accept_by"] is not None      # the rule's SLA again


def test_a_breached_sla_is_recycled(routed: TestClient) -> None:
    qualify(routed, "ch1", country="CH")
    assert run_sweep(routed, 3) == {"recycle": 1}
    lead = routed.get("/api/leads/ch1", headers=ADMIN).json()
    assert lead["stage"] == "recycled"


def test_an_answer_in_time_meets_the_sla(routed: TestClient) -> None:
    qualify(routed, "de2", country="DE")
    qualify(routed, "de3", country="DE")
    assert routed.post("/api/leads/de2/feedback", headers=SALES,
                       json={"status": "accepted"}).status_code == 200
    send(routed, {"type": "track", "userId": "de3", "event": "Lead Rejected",
                  "messageId": "crm-de3", "properties": {"reason": "student"}})
    assert run_sweep(routed, 3) == {"answered": 2}
    assert len(handoffs_of(routed, "de2")) == 1


def test_open_handoffs_breached_first_and_median_time_to_accept(routed: TestClient) -> None:
    qualify(routed, "x1")                 # no SLA
    qualify(routed, "de4", country="DE")  # SLA 2 hours
    qualify(routed, "x2")
    assert routed.post("/api/leads/x2/feedback", headers=ADMIN,
                       json={"status": "accepted"}).status_code == 200
    service: Any = routed.app.state.service     # type: ignore[attr-defined]
    found = open_handoffs(service.db, now=now_us() + 3 * HOUR)
    assert [r["lead_id"] for r in found["open"]] == ["de4", "x1"]
    assert found["open"][0]["breached"] is True and found["open"][1]["breached"] is False
    [owner] = found["owners"]
    assert owner["accepted"] == 1 and 0 <= owner["median_hours_to_accept"] < 0.1
    listed = routed.get("/api/sales/handoffs", headers=SALES).json()
    assert {r["lead_id"] for r in listed["open"]} == {"de4", "x1"}
