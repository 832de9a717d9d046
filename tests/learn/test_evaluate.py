"""Backtest: metrics, per-rule lift, comparison, report files, and the CLI commands."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from leadscore import load_model
from leadscore.learn import evaluate
from leadscore.learn.report import write_html

ROOT = Path(__file__).parents[2]
DATA = ROOT / "examples" / "data"
HAND = ROOT / "examples" / "planted-hand.yaml"
CUT = "2026-06-01T00:00:00Z"


@pytest.fixture(scope="module")
def backtest():
    hand = load_model(HAND)
    flat = hand.model_copy(update={"name": "fit-only", "engagement": type(hand.engagement)()})
    return evaluate([hand, flat], DATA / "planted-events.parquet",
                    str(DATA / "planted-leads.csv"), str(DATA / "planted-outcomes.csv"),
                    as_of=CUT, window_days=30, replicates=50)


def test_summary_and_tables(backtest) -> None:
    hand = backtest.evaluations[0]
    assert hand.leads > 1000 and hand.conversions > 30
    assert 0.6 < hand.summary["auc"] < 1
    assert hand.summary["capture_20"] > 0.3
    assert hand.summary["mql_precision"] > hand.summary["conversion_below_mql"]
    assert len(hand.gains) == 10 and hand.gains["gain"].iloc[-1] == pytest.approx(1)
    assert set(hand.by_grade["grade"]) <= {"A", "B", "C", "F"}
    assert not hand.calibration.empty


def test_rules_fire_and_demo_requests_lift_conversion(backtest) -> None:
    rules = backtest.evaluations[0].rules.set_index("rule")
    assert len(rules) == 7
    assert rules.loc["demo request", "lift"] > 1.3
    assert rules.loc["demo request", "leads"] < rules.loc["blog", "leads"]


def test_comparison_has_a_paired_interval(backtest) -> None:
    row = backtest.comparison.iloc[1]
    assert row["auc_diff"] < 0                    # engagement matters in this world
    assert row["auc_diff_low"] <= row["auc_diff"] <= row["auc_diff_high"]


def test_html_report_and_pngs(backtest, tmp_path) -> None:
    files = write_html(backtest, tmp_path / "report.html")
    html = (tmp_path / "report.html").read_text()
    assert "<svg" in html and "Cumulative gains" in html
    pngs = [f for f in files if f.suffix == ".png"]
    assert len(pngs) == 3 and all(f.read_bytes()[:4] == b"\x89PNG" for f in pngs)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["leadscore", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "120"}, timeout=300)


def test_cli_learn_then_evaluate(tmp_path) -> None:
    inputs = ["--events", str(DATA / "planted-events.parquet"), "--leads",
              str(DATA / "planted-leads.csv"), "--outcomes", str(DATA / "planted-outcomes.csv")]
    done = run("learn", *inputs, "--as-of", "2026-05-02T00:00:00Z", "--out", "learned.yaml",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "test (time split" in done.stdout
    load_model(tmp_path / "learned.yaml")
    done = run("evaluate", "--model", str(HAND), "--model", "learned.yaml", *inputs,
               "--as-of", CUT, "--window-days", "30", "--no-rules", "--bootstrap", "30",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Difference from planted-hand" in done.stdout


def test_cli_too_few_conversions_is_one_red_line(tmp_path) -> None:
    done = run("learn", "--events", str(DATA / "planted-events.parquet"), "--outcomes",
               str(DATA / "planted-outcomes.csv"), "--min-conversions", "100000",
               cwd=tmp_path)
    assert done.returncode == 1
    assert "learning needs at least 100000 conversions" in done.stderr
    assert "Traceback" not in done.stderr
