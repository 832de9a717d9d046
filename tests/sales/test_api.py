"""Sales through the API on SQLite and PostgreSQL: owners on handoffs, feedback moving the
stage (API, sales key, a CRM's track event), the cool-down after a rejection, adjustments and
their expiry, the audit log, and the exports."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

from fastapi.testclient import TestClient

from leadscore.timeutil import iso, now_us
from tests.api.conftest import WRITE_KEY
from tests.sales.conftest import ADMIN, SALES, handoffs_of, qualify, send


def lead(client: TestClient, lead_id: str) -> dict[str, Any]:
    response = client.get(f"/api/leads/{lead_id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def test_handoffs_carry_their_owner_by_the_first_matching_rule(client: TestClient) -> None:
    send(client, {"type": "group", "userId": "ent", "groupId": "acme", "messageId": "g1",
                  "traits": {"tier": "enterprise"}})
    qualify(client, "ent", country="DE")
    for user in ("de1", "de2", "de3"):
        qualify(client, user, country="DE")
    qualify(client, "fr1", country="FR")
    owners = {u: handoffs_of(client, u)[0]["payload"]["owner"]
              for u in ("ent", "de1", "de2", "de3", "fr1")}
    assert owners["ent"] == "kim@shop.example"            # account.tier: enterprise first
    # dach round-robin: anna, ben, anna (each at most 2 a day)
    assert [owners[u] for u in ("de1", "de2", "de3")] == [
        "anna@shop.example", "ben@shop.example", "anna@shop.example"]
    assert owners["fr1"] == "wes@shop.example"
    payload = handoffs_of(client, "de1")[0]["payload"]
    assert payload["team"] == "dach" and payload["routing_rule"] == "dach"
    assert payload["accept_by"] is not None
    # the listing filters by owner, and shows it
    listed = client.get("/api/leads", params={"owner": "anna@shop.example"},
                        headers=ADMIN).json()
    assert sorted(r["lead_id"] for r in listed["leads"]) == ["de1", "de3"]
    assert {r["owner"] for r in listed["leads"]} == {"anna@shop.example"}


def test_a_team_member_at_capacity_is_skipped(client: TestClient) -> None:
    for i in range(5):
        qualify(client, f"at{i}", country="AT")
    owners = [handoffs_of(client, f"at{i}")[0]["payload"]["owner"] for i in range(5)]
    assert owners[:4] == ["anna@shop.example", "ben@shop.example"] * 2
    assert owners[4] is None           # both at 2 today: the team's handoff has no owner
    assert handoffs_of(client, "at4")[0]["payload"]["team"] == "dach"


def test_feedback_moves_the_stage_and_is_audited(client: TestClient) -> None:
    qualify(client, "ann", country="FR")
    assert lead(client, "ann")["stage"] == "mql"
    response = client.post("/api/leads/ann/feedback", headers=SALES,
                           json={"status": "accepted", "by": "wes@shop.example"})
    assert response.status_code == 200, response.text
    assert lead(client, "ann")["stage"] == "sal"
    assert client.post("/api/leads/ann/feedback", headers=ADMIN,
                       json={"status": "opportunity"}).status_code == 200
    assert lead(client, "ann")["stage"] == "opportunity"
    assert client.post("/api/leads/ann/feedback", headers=ADMIN,
                       json={"status": "won"}).status_code == 200
    assert lead(client, "ann")["stage"] == "customer"
    entries = client.get("/api/audit", params={"action": "feedback"},
                         headers=ADMIN).json()["entries"]
    assert [e["detail"]["status"] for e in entries] == ["won", "opportunity", "accepted"]
    assert entries[-1]["actor"] == "wes@shop.example" and entries[-1]["target"] == "ann"
    assert entries[-1]["detail"]["via"] == "sales"


def test_bad_feedback_is_a_400_naming_the_field(client: TestClient) -> None:
    qualify(client, "bea")
    cases = [({"status": "maybe"}, "status"), ({"status": "rejected"}, "reason"),
             ({"status": "rejected", "reason": "too tall"}, "reason"),
             ({"status": "accepted", "by": 7}, "by"), ({"status": "accepted", "x": 1}, "x"),
             (["accepted"], "(body)")]
    for body, field in cases:
        response = client.post("/api/leads/bea/feedback", headers=ADMIN, json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["errors"][0]["field"] == field
    assert client.post("/api/leads/nobody/feedback", headers=ADMIN,
                       json={"status": "accepted"}).status_code == 404
    assert lead(client, "bea")["stage"] == "mql"


def test_the_sales_key_reads_leads_and_gives_feedback_nothing_else(
        client: TestClient) -> None:
    qualify(client, "cal")
    assert client.get("/api/leads/cal", headers=SALES).status_code == 200
    assert client.get("/api/leads", headers=SALES).status_code == 200
    for method, path in (("get", "/api/models"), ("get", "/api/audit"),
                         ("post", "/api/leads/cal/adjustments"), ("get", "/api/routing"),
                         ("delete", "/api/leads/cal"), ("get", "/api/leads/cal/export")):
        response = getattr(client, method)(path, headers=SALES)
        assert response.status_code == 403, (path, response.text)
    writer = {"Authorization": f"Bearer {WRITE_KEY}"}
    assert client.post("/api/leads/cal/feedback", headers=writer,
                       json={"status": "accepted"}).status_code == 403


def test_a_crm_sends_feedback_as_track_events(client: TestClient) -> None:
    qualify(client, "dan")
    send(client, {"type": "track", "userId": "dan", "event": "Lead Rejected",
                  "messageId": "crm-1", "properties": {"reason": "student"}})
    assert lead(client, "dan")["stage"] == "rejected"
    rows = client.get("/api/feedback", headers=ADMIN).json()["feedback"]
    assert [(r["lead_id"], r["status"], r["reason"]) for r in rows] == [
        ("dan", "rejected", "student")]


def test_a_rejected_lead_is_not_handed_off_again_within_the_cool_down(
        client: TestClient) -> None:
    qualify(client, "eve")
    assert len(handoffs_of(client, "eve")) == 1
    assert client.post("/api/leads/eve/feedback", headers=ADMIN,
                       json={"status": "rejected", "reason": "bad timing"}).status_code == 200
    send(client, {"type": "track", "userId": "eve", "event": "Went Quiet", "messageId": "q1"})
    assert lead(client, "eve")["mql"] is False
    send(client, {"type": "track", "userId": "eve", "event": "Demo Requested",
                  "messageId": "d2"})
    assert lead(client, "eve")["mql"] is True            # re-qualified …
    assert len(handoffs_of(client, "eve")) == 1          # … but within 30 days: no handoff
    # without a cool-down the same crossing is handed off
    routing = client.get("/api/routing", headers=ADMIN).json()["routing"]
    changed = routing.replace("rejected_cooldown_days: 30", "rejected_cooldown_days: 0")
    assert client.put("/api/routing", headers=ADMIN, content=changed).status_code == 200
    send(client, {"type": "track", "userId": "eve", "event": "Went Quiet", "messageId": "q2"},
         {"type": "track", "userId": "eve", "event": "Demo Requested", "messageId": "d3"})
    assert len(handoffs_of(client, "eve")) == 2


def test_routing_errors_name_the_line_and_key(client: TestClient) -> None:
    bad = "teams:\n  a: {members: [x]}\nrules:\n  - {team: b}\n  - {owner: y, on_breach: shout}\n"
    response = client.put("/api/routing", headers=ADMIN, content=bad)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [(e["line"], e["key"]) for e in errors] == [(4, "rules[0].team"),
                                                       (5, "rules[1].on_breach")]
    assert "unknown team 'b'" in errors[0]["message"]


def test_an_adjustment_is_a_reason_and_expires(client: TestClient) -> None:
    qualify(client, "fay")
    before = lead(client, "fay")["score"]
    response = client.post("/api/leads/fay/adjustments", headers=ADMIN, json={
        "points": 15, "reason": "met at the trade fair", "by": "kim@shop.example",
        "expires_at": iso(now_us() + 1_500_000)})
    assert response.status_code == 201, response.text
    found = lead(client, "fay")
    assert found["score"] == before + 15
    reasons = {r["rule"]: r["points"] for r in found["reasons"]}
    assert reasons["program adjustment: met at the trade fair"] == 15
    entries = client.get("/api/audit", params={"action": "adjustment"},
                         headers=ADMIN).json()["entries"]
    assert entries[0]["actor"] == "kim@shop.example" and entries[0]["detail"]["points"] == 15
    service = client.app.state.service      # type: ignore[attr-defined]
    assert service.sales.expire_due() == 0          # not yet
    time.sleep(1.6)
    assert service.sales.expire_due() == 1
    assert lead(client, "fay")["score"] == before
    assert client.get("/api/leads/fay/adjustments", headers=ADMIN).json()[
        "adjustments"][0]["expired"] is True
    for body, field in (({"points": 0, "reason": "x"}, "points"), ({"points": 5}, "reason"),
                        ({"points": 5, "reason": "x", "expires_at": "2001-01-01"},
                         "expires_at")):
        response = client.post("/api/leads/fay/adjustments", headers=ADMIN, json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["errors"][0]["field"] == field
    response = client.post("/api/leads/fay/adjustments", content='{"points": 1e400, '
                           '"reason": "x"}', headers={**ADMIN, "Content-Type": "application/json"})
    assert response.status_code == 400, response.text


def test_model_uploads_and_routing_changes_are_audited(client: TestClient) -> None:
    text = client.get("/api/routing", headers=ADMIN).json()["routing"]
    assert client.put("/api/routing", headers=ADMIN,
                      content=text + "\n# a comment\n").status_code == 200
    model = "name: extra\nengagement:\n  rules:\n    - {name: x, event: X, points: 1}\n"
    assert client.put("/api/models/extra", headers=ADMIN, content=model).status_code == 202
    actions = [(e["action"], e["target"]) for e in client.get(
        "/api/audit", headers=ADMIN).json()["entries"]]
    assert actions[:2] == [("model", "extra"), ("setting", "routing.yaml")]


def test_leads_csv_streams_every_matching_lead(client: TestClient) -> None:
    send(client, *({"type": "identify", "userId": f"u{i:04d}", "messageId": f"i{i}",
                    "traits": {"email": f"u{i}@example.org"}} for i in range(1100)))
    qualify(client, "top", country="DE")
    response = client.get("/api/leads", params={"format": "csv"}, headers=ADMIN)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 1101                              # not 1,000 per page
    assert rows[0]["lead_id"] == "top" and rows[0]["owner"] == "anna@shop.example"
    assert rows[0]["stage"] == "mql"
    assert rows[0]["top_reasons"] == "requested a demo (+30); gave an e-mail (+10)"
    only = client.get("/api/leads", params={"format": "csv", "owner": "anna@shop.example"},
                      headers=ADMIN)
    assert [r["lead_id"] for r in csv.DictReader(io.StringIO(only.text))] == ["top"]


def test_recycling_keeps_or_resets_the_score_as_configured(client: TestClient) -> None:
    qualify(client, "gus")
    qualify(client, "hal")
    assert client.post("/api/leads/gus/feedback", headers=ADMIN,
                       json={"status": "recycled"}).status_code == 200
    found = lead(client, "gus")
    assert (found["stage"], found["engagement"], found["score"]) == ("recycled", 30.0, 40.0)
    routing = client.get("/api/routing", headers=ADMIN).json()["routing"]
    routing = routing.replace("  rejected_cooldown_days: 30", "  rejected_cooldown_days: 30\n"
                              "  recycle: reset")
    assert client.put("/api/routing", headers=ADMIN, content=routing).status_code == 200
    assert client.post("/api/leads/hal/feedback", headers=ADMIN,
                       json={"status": "lost", "reason": "bad timing"}).status_code == 200
    found = lead(client, "hal")
    assert (found["stage"], found["engagement"], found["score"]) == ("recycled", 0.0, 10.0)
    assert found["mql"] is False
    send(client, {"type": "track", "userId": "hal", "event": "Demo Requested",
                  "messageId": "hal-again"})
    assert lead(client, "hal")["mql"] is True               # it can qualify again
    bad = routing.replace("recycle: reset", "recycle: forget")
    response = client.put("/api/routing", headers=ADMIN, content=bad)
    assert response.status_code == 422 and response.json()["errors"][0]["key"] == \
        "feedback.recycle"


def test_outside_the_teams_hours_nobody_is_assigned(client: TestClient) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    start, end = now + timedelta(hours=2), now + timedelta(hours=3)
    routing = ("teams:\n  late: {members: [owl@shop.example], hours: "
               f'"{start:%H}:00-{end:%H}:00 UTC"}}\nrules:\n  - {{team: late}}\n')
    assert client.put("/api/routing", headers=ADMIN, content=routing).status_code == 200
    qualify(client, "ida")
    payload = handoffs_of(client, "ida")[0]["payload"]
    assert payload["owner"] is None and payload["team"] == "late"
    response = client.post("/api/leads/ida/adjustments", headers=ADMIN,
                           json={"points": 5, "reason": "x", "model": "nope"})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "model"
