"""Backtest "buys again within N days" among the customers as of a cut-off, ranked by the
customer-lifecycle fields and the model's score."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from leadscore.errors import InputError
from leadscore.learn.repeat import evaluate_repeat
from leadscore.model.loader import load_model
from leadscore.timeutil import US_PER_DAY, iso, parse_timestamp

MODEL = """
name: shop
lifecycle:
  - {stage: customer, on: {event: Order Completed}}
engagement:
  rules:
    - {name: browsing, page: /products/*, points: 1}
"""
CUT = parse_timestamp("2026-05-01T00:00:00Z")


def _world(folder: Path) -> Path:
    """120 customers: customer i last bought i days before the cut; the 40 most recent buy
    again 10 days after it, and so does customer 100 (an old one). Customer 200 buys for the
    first time after the cut: not a customer at the cut-off. A prospect only browses."""
    rows = []
    for i in range(120):
        lead = f"c{i:03d}"
        rows.append((lead, CUT - (i + 1) * US_PER_DAY, "track", "Order Completed", None, 20.0))
        if i < 40 or i == 100:
            rows.append((lead, CUT + 10 * US_PER_DAY, "track", "Order Completed", None, 5.0))
    rows.append(("c200", CUT + 2 * US_PER_DAY, "track", "Order Completed", None, 9.0))
    rows.append(("p", CUT - US_PER_DAY, "page", None, "/products/a", None))
    table = pa.table({
        "lead_id": [r[0] for r in rows],
        "timestamp": pa.array([r[1] for r in rows], pa.int64()).cast(
            pa.timestamp("us", tz="UTC")),
        "type": [r[2] for r in rows], "event": pa.array([r[3] for r in rows], pa.string()),
        "path": pa.array([r[4] for r in rows], pa.string()),
        "revenue": pa.array([r[5] for r in rows], pa.float64())})
    pq.write_table(table, folder / "events.parquet")
    return folder / "events.parquet"


def test_recency_predicts_who_buys_again(tmp_path: Path) -> None:
    model = load_model("shop.yaml", text=MODEL)
    backtest = evaluate_repeat(model, str(_world(tmp_path)), as_of=CUT, within_days=30,
                               replicates=30)
    by_name = {e.model: e for e in backtest.evaluations}
    assert list(by_name) == ["score: shop", "recency (most recent first)", "frequency",
                             "monetary", "tenure"]
    recency = by_name["recency (most recent first)"]
    assert (recency.leads, recency.conversions) == (120, 41)   # c200 and p are no customers
    assert recency.summary["auc"] > 0.95 and recency.summary["capture_30"] > 0.85
    assert by_name["frequency"].summary["auc"] == pytest.approx(0.5)   # all bought once
    assert "bought again within 30 days" in backtest.notes[0]
    assert backtest.comparison["model"].iloc[0] == "score: shop"


def test_buys_again_needs_a_window(tmp_path: Path) -> None:
    model = load_model("shop.yaml", text=MODEL)
    with pytest.raises(InputError, match="--window-days"):
        evaluate_repeat(model, str(_world(tmp_path)), as_of=CUT)


def test_cli_evaluate_buys_again(tmp_path: Path) -> None:
    (tmp_path / "shop.yaml").write_text(MODEL)
    events = _world(tmp_path)
    done = subprocess.run(
        ["leadscore", "evaluate", "--model", "shop.yaml", "--events", str(events),
         "--outcomes", "buys-again", "--window-days", "30", "--as-of", iso(CUT),
         "--bootstrap", "20"], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "COLUMNS": "160"}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "recency (most recent first)" in done.stdout and "monetary" in done.stdout
    assert "120 leads, 41 converted" in done.stdout
