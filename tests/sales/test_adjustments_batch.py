"""Adjustments count in batch as in the service: an adjustments table turned into events
(`leadscore adjustments events`) and scored with the events file gives the service's score —
with decay, before and after an expiry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import leadscore
from leadscore.service import Service
from leadscore.timeutil import US_PER_DAY, iso

MODEL = """\
name: decaying
engagement:
  decay: {half_life_days: 10}
  rules:
    - {name: demo, event: Demo Requested, points: 30}
"""
T0 = 1_780_000_000_000_000          # 2026-05-28


@pytest.mark.parametrize("days_after", [3.0, 12.0])      # before and after the expiry
def test_batch_counts_an_adjustments_table_as_the_service_does(tmp_path: Path,
                                                               days_after: float) -> None:
    model_file = tmp_path / "decaying.yaml"
    model_file.write_text(MODEL, encoding="utf-8")
    model = leadscore.load_model(model_file)
    events = [{"type": "track", "userId": "ann", "event": "Demo Requested",
               "messageId": "e1", "timestamp": iso(T0)}]
    table = tmp_path / "adjustments.csv"
    table.write_text("lead_id,points,reason,at,expires_at\n"
                     f"ann,15,met at the trade fair,{iso(T0 + US_PER_DAY)},"
                     f"{iso(T0 + 8 * US_PER_DAY)}\n", encoding="utf-8")
    (tmp_path / "events.jsonl").write_text(json.dumps(events[0]) + "\n", encoding="utf-8")
    adjusted = tmp_path / "all.jsonl"
    result = subprocess.run([sys.executable, "-m", "leadscore.cli", "adjustments", "events",
                             str(table), "--model", str(model_file), "--events",
                             str(tmp_path / "events.jsonl"), "--out", str(adjusted)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    messages = [json.loads(line) for line in adjusted.read_text().splitlines()][1:]
    assert [m["properties"]["points"] for m in messages] == [
        15.0, pytest.approx(-15 * 2 ** (-7 / 10))]
    as_of = iso(T0 + round(days_after * US_PER_DAY))
    batch = leadscore.score_many(model, str(adjusted), as_of=as_of).to_pylist()
    with Service.open("sqlite://", models=[model], background=False) as service:
        # the service writes an expiry when it is due: it has only what happened by as_of
        service.ingest([m for m in events + messages if m["timestamp"] <= as_of])
        live = service.get_lead("ann", as_of=as_of)
    expected = 30 * 2 ** (-days_after / 10) + (
        15 * 2 ** (-(days_after - 1) / 10) if days_after < 8 else 0.0)
    assert batch[0]["engagement"] == pytest.approx(expected, abs=1e-9)
    assert live["engagement"] == pytest.approx(expected, abs=1e-9)
