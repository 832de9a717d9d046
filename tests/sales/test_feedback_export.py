"""Sales' verdicts become outcomes: `GET /api/feedback?format=csv` and `leadscore feedback
export` give `lead_id, status, reason, at, owner` (and `converted`, `converted_at`) that
`evaluate --outcomes` reads directly — won = converted, or accepted with `outcome=accepted`."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import duckdb
from fastapi.testclient import TestClient

from leadscore.learn.outcomes import read_outcomes
from leadscore.timeutil import US_PER_DAY, iso, now_us
from tests.sales.conftest import ADMIN, MODELS, qualify, send

VERDICTS = {"w1": ("won", None), "w2": ("won", None), "a1": ("accepted", None),
            "r1": ("rejected", "student"), "r2": ("rejected", "not a buyer")}


def test_feedback_csv_is_an_outcomes_file_evaluate_reads(client: TestClient,
                                                         tmp_path: Path, db_url: str) -> None:
    for user in [*VERDICTS, "n1"]:
        qualify(client, user, country="FR")
    for user, (status, reason) in VERDICTS.items():
        if status == "won":
            client.post(f"/api/leads/{user}/feedback", headers=ADMIN,
                        json={"status": "accepted"})
        body = {"status": status, **({"reason": reason} if reason else {})}
        assert client.post(f"/api/leads/{user}/feedback", headers=ADMIN,
                           json=body).status_code == 200
    response = client.get("/api/feedback", params={"format": "csv"}, headers=ADMIN)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0])[:5] == ["lead_id", "status", "reason", "at", "owner"]
    assert {(r["lead_id"], r["status"], r["reason"]) for r in rows} >= {
        ("r1", "rejected", "student"), ("w1", "won", ""), ("a1", "accepted", "")}
    assert {r["owner"] for r in rows} == {"wes@shop.example"}
    won = tmp_path / "won.csv"
    won.write_text(response.text, encoding="utf-8")
    con = duckdb.connect()
    outcomes = read_outcomes(str(won), con)
    assert (outcomes.rows, outcomes.converted) == (5, 2)          # w1, w2
    accepted = client.get("/api/feedback", params={"format": "csv", "outcome": "accepted"},
                          headers=ADMIN).text
    (tmp_path / "accepted.csv").write_text(accepted, encoding="utf-8")
    assert read_outcomes(str(tmp_path / "accepted.csv"), con).converted == 3   # a1, w1, w2

    # the CLI writes the same file from the store
    cli = tmp_path / "cli.csv"
    result = subprocess.run([sys.executable, "-m", "leadscore.cli", "feedback", "export",
                             "--db", db_url, "--out", str(cli)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert cli.read_text(encoding="utf-8") == response.text

    # … and `evaluate --outcomes` takes it as it is: the leads' history before the cut-off
    cut = now_us() - US_PER_DAY
    events = tmp_path / "events.jsonl"
    history = []
    for i, user in enumerate([*VERDICTS, "n1"]):
        history.append({"type": "identify", "userId": user, "messageId": f"h-id-{user}",
                        "timestamp": iso(cut - 3 * US_PER_DAY),
                        "traits": {"email": f"{user}@example.org"}})
        if user.startswith("w") or i % 2:
            history.append({"type": "track", "userId": user, "event": "Demo Requested",
                            "messageId": f"h-demo-{user}", "timestamp": iso(cut - US_PER_DAY)})
    events.write_text("".join(json.dumps(m) + "\n" for m in history), encoding="utf-8")
    send(client, *history)
    result = subprocess.run([sys.executable, "-m", "leadscore.cli", "evaluate", "--model",
                             str(MODELS / "sales.yaml"), "--events", str(events),
                             "--outcomes", str(won), "--as-of", iso(cut), "--no-rules",
                             "--bootstrap", "20"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "2 converted" in result.stdout            # w1 and w2 won


def test_insights_give_mql_precision_and_rejections_by_rule(client: TestClient) -> None:
    from leadscore.sales.insights import insights

    qualify(client, "p1")
    qualify(client, "p2", looking_for_job=True)      # careers page fires: −5
    qualify(client, "p3", looking_for_job=True)
    send(client, {"type": "track", "userId": "p2", "event": "Demo Requested",
                  "messageId": "p2-more"}, {"type": "track", "userId": "p3",
                                            "event": "Demo Requested", "messageId": "p3-more"})
    assert client.post("/api/leads/p1/feedback", headers=ADMIN,
                       json={"status": "accepted"}).status_code == 200
    assert client.post("/api/leads/p2/feedback", headers=ADMIN,
                       json={"status": "rejected", "reason": "student"}).status_code == 200
    service = client.app.state.service      # type: ignore[attr-defined]
    found = insights(service.db)
    [month] = found["months"]
    assert (month["handoffs"], month["answered"], month["accepted"], month["rejected"],
            month["precision"]) == (3, 2, 1, 1, 0.5)
    rules = {r["rule"]: r for r in found["rules"]}
    assert rules["careers page"]["handoffs"] == 2
    assert rules["careers page"]["reasons"] == {"student": 1}
    assert rules["gave an e-mail"]["accepted"] == 1
