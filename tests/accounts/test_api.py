"""Accounts and interests over real HTTP: a `leadscore serve` on 127.0.0.1 (SQLite and
PostgreSQL) scores accounts from Segment messages, delivers the account handoff and the lead
handoff (with its interests) to a real webhook and a real SMTP server, and answers
/api/accounts and /api/leads/{id} behind the admin token, in the one error shape."""

from __future__ import annotations

import email
import time
from pathlib import Path
from typing import Any

import aiosmtpd.controller as aiosmtpd
import httpx
import pytest

from tests.accounts.conftest import MODELS
from tests.alerts.receiver import Receiver, free_port
from tests.alerts.test_email import Inbox
from tests.api.conftest import WRITE_KEY
from tests.api.live import serving


def batch() -> list[dict[str, Any]]:
    return [
        {"type": "group", "userId": "ann", "groupId": "acme",
         "traits": {"name": "Acme Inc", "industry": "software", "domain": "acme.com"}},
        {"type": "identify", "userId": "ann",
         "traits": {"email": "ann@acme.com", "job_level": "decision maker"}},
        {"type": "identify", "userId": "bob", "traits": {"email": "bob@acme.com",
                                                         "job_level": "user"}},
        {"type": "group", "userId": "cy", "groupId": "beta", "traits": {"industry": "retail"}},
        {"type": "track", "userId": "ann", "event": "Demo Requested", "messageId": "a1"},
        {"type": "track", "userId": "bob", "event": "Vehicle Interest Submitted",
         "properties": {"model": "SUV"}, "messageId": "b1"},
        {"type": "track", "userId": "bob", "event": "Demo Requested", "messageId": "b2"},
        {"type": "track", "userId": "bob", "event": "Demo Requested", "messageId": "b3"},
    ]


@pytest.mark.slow
def test_accounts_and_interests_over_http(tmp_path: Path, db_url: str) -> None:
    receiver = Receiver("hook-secret").start()
    inbox = Inbox()
    smtp = aiosmtpd.Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    env = {"LEADSCORE_WEBHOOK_URLS": receiver.url, "LEADSCORE_WEBHOOK_SECRET": "hook-secret",
           "LEADSCORE_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
           "LEADSCORE_SMTP_TO": "sales@example.org"}
    try:
        with serving(db_url, tmp_path, models=MODELS, env=env) as live, \
                httpx.Client(base_url=live.url, auth=(WRITE_KEY, ""), timeout=30) as client, \
                live.admin() as admin:
            assert client.post("/v1/batch", json={"batch": batch()}).status_code == 200
            assert receiver.wait_for(2, timeout=20)        # bob's MQL and acme's MQA
            deadline = time.time() + 10
            while len(inbox.messages) < 2 and time.time() < deadline:
                time.sleep(0.05)

            listed = admin.get("/api/accounts").json()
            one = admin.get("/api/accounts", params={"limit": 1, "offset": 1}).json()
            mqas = admin.get("/api/accounts", params={"mqa": "true"}).json()
            high = admin.get("/api/accounts", params={"min_score": 1000}).json()
            acme = admin.get("/api/accounts/acme").json()
            missing = admin.get("/api/accounts/nope")
            wrong_model = admin.get("/api/accounts/acme", params={"model": "web"})
            bad_sort = admin.get("/api/accounts", params={"sort": "colour"})
            anonymous = httpx.get(live.url + "/api/accounts")
            bob = admin.get("/api/leads/bob").json()
    finally:
        receiver.stop()
        smtp.stop()

    assert receiver.bad_signatures == 0 and max(receiver.counts.values()) == 1
    bodies = {body["type"]: body for body in receiver.bodies.values()}
    account = bodies["account_handoff"]
    assert account["account_id"] == "acme" and account["mqa"] is True
    assert account["traits"]["name"] == "Acme Inc"
    assert account["roles_engaged"] == ["decision maker", "user"]
    assert [p["lead_id"] for p in account["people"]] == ["bob", "ann"]
    assert account["score"] == pytest.approx(20 + 30 + 65, abs=0.01)
    lead = bodies["handoff"]
    assert lead["lead_id"] == "bob" and lead["interested_in"] == "interested in: SUV 5"
    assert lead["interests"] == [{"topic": "SUV", "weight": pytest.approx(5, abs=1e-3)}]

    mails = {email.message_from_bytes(m.content)["Subject"]: email.message_from_bytes(
        m.content).get_payload(decode=True).decode() for m in inbox.messages}
    [account_subject] = [s for s in mails if s.startswith("account ")]
    assert account_subject.startswith("account acme is an MQA under b2b: score 115")
    assert "Roles engaged: decision maker, user" in mails[account_subject]
    [lead_subject] = [s for s in mails if s.startswith("bob ")]
    assert "interested in: SUV 5" in mails[lead_subject]

    assert listed["total"] == 2 and [a["account_id"] for a in listed["accounts"]] == [
        "acme", "beta"]
    assert listed["accounts"][0]["traits"]["name"] == "Acme Inc"
    assert one["total"] == 2 and [a["account_id"] for a in one["accounts"]] == ["beta"]
    assert [a["account_id"] for a in mqas["accounts"]] == ["acme"]
    assert high == {"accounts": [], "total": 0, "limit": 50, "offset": 0}
    assert acme["mqa"] is True and acme["model"] == "b2b" and acme["rollup"] == "sum"
    assert {p["lead_id"]: p["match"] for p in acme["people"]} == {"ann": "group",
                                                                  "bob": "domain"}
    assert acme["roles_engaged"] == ["decision maker", "user"] and acme["crossings"] == 1
    for response, status in ((missing, 404), (wrong_model, 404), (bad_sort, 422),
                             (anonymous, 401)):
        body = response.json()
        assert response.status_code == status and body["ok"] is False
        assert body["status"] == status and isinstance(body["error"], str)
        assert isinstance(body["errors"], list)
    assert missing.json()["error"].startswith("no account 'nope")
    assert bob["interests"][0]["topic"] == "SUV"
    assert bob["account_link"] == {"account_id": "acme", "match": "domain"}
