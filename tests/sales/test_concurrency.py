"""Routing under concurrent handoffs, against the real server (two worker processes) on SQLite
and PostgreSQL: every lead is assigned once, round-robin never gives two leads one turn, and
no member goes past the team's daily capacity."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.api.conftest import WRITE_KEY
from tests.api.live import serving
from tests.sales.conftest import models_with_routing

ROUTING = """\
teams:
  dach: {members: [anna@shop.example, ben@shop.example, cem@shop.example],
         capacity_per_day: 7}
rules:
  - {team: dach, accept_within_hours: 24, on_breach: reassign}
"""
LEADS = 30


def test_concurrent_handoffs_are_assigned_once_within_capacity(db_url: str,
                                                               tmp_path: Path) -> None:
    models = models_with_routing(tmp_path, ROUTING)
    with serving(db_url, tmp_path, workers=2, models=models) as live:
        def qualify(i: int) -> None:
            with httpx.Client(base_url=live.url, timeout=60, auth=(WRITE_KEY, "")) as client:
                response = client.post("/v1/batch", json={"batch": [
                    {"type": "identify", "userId": f"p{i}", "messageId": f"i{i}",
                     "traits": {"email": f"p{i}@example.org"}},
                    {"type": "track", "userId": f"p{i}", "event": "Demo Requested",
                     "messageId": f"d{i}"}]})
                assert response.status_code == 200, response.text

        with ThreadPoolExecutor(10) as pool:
            list(pool.map(qualify, range(LEADS)))
        with live.admin() as admin:
            handoffs = admin.get("/api/handoffs", params={"limit": 1000}).json()["handoffs"]
            waiting = admin.get("/api/sales/handoffs").json()["open"]
            listed = {owner: admin.get("/api/leads", params={"owner": owner}).json()["total"]
                      for owner in ("anna@shop.example", "ben@shop.example",
                                    "cem@shop.example")}
    assert len(handoffs) == LEADS
    assert len({h["lead_id"] for h in handoffs}) == LEADS
    # one assignment per handoff, and per lead
    assert sorted(w["lead_id"] for w in waiting) == sorted(f"p{i}" for i in range(LEADS))
    owners = Counter(h["payload"]["owner"] for h in handoffs)
    assert owners == {"anna@shop.example": 7, "ben@shop.example": 7, "cem@shop.example": 7,
                      None: LEADS - 21}
    assert listed == {"anna@shop.example": 7, "ben@shop.example": 7, "cem@shop.example": 7}
    assert all(h["payload"]["team"] == "dach" for h in handoffs)
