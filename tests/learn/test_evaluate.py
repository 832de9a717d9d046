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


def test_cli_evaluate_with_no_conversion_in_the_window_says_so(tmp_path) -> None:
    done = run("evaluate", "--model", str(HAND), "--events", str(DATA / "planted-events.parquet"),
               "--leads", str(DATA / "planted-leads.csv"), "--outcomes",
               str(DATA / "planted-outcomes.csv"), "--as-of", "2030-06-01T00:00:00Z",
               "--window-days", "30", "--no-rules", "--bootstrap", "10", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "nothing to rank: none of the 1,475 leads converted within 30 days" in done.stdout
    assert "nan" not in done.stdout and "ROC AUC" not in done.stdout


def test_predictive_is_evaluated_next_to_the_points_model() -> None:
    from leadscore.learn.backtest import PREDICTIVE

    backtest = evaluate([load_model(HAND)], DATA / "planted-events.parquet",
                        str(DATA / "planted-leads.csv"), str(DATA / "planted-outcomes.csv"),
                        as_of=CUT, window_days=30, replicates=30, rules=False, predictive=True)
    points, predictive = backtest.evaluations
    assert points.model == "planted-hand" and predictive.model == PREDICTIVE
    assert predictive.leads == points.leads and predictive.conversions == points.conversions
    assert 0.55 < predictive.summary["auc"] < 1
    assert "mql_leads" not in predictive.summary and predictive.by_grade.empty
    assert "mean_probability" in predictive.calibration
    assert backtest.comparison["model"].tolist() == ["planted-hand", PREDICTIVE]
    assert backtest.comparison["auc_diff_low"].iloc[1] <= backtest.comparison["auc_diff"].iloc[1]
    assert any("trained on" in note and "as of 2026-05-02" in note for note in backtest.notes)


def test_predictive_sees_nothing_after_the_cut_off(tmp_path) -> None:
    # The same probabilities whether or not events and outcomes after the cut-off exist.
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    from leadscore.learn.inputs import open_inputs
    from leadscore.learn.predictive import backtest_predictive
    from leadscore.timeutil import parse_timestamp

    cut = parse_timestamp(CUT)
    events = pq.read_table(DATA / "planted-events.parquet").to_pandas()
    outcomes = pd.read_csv(DATA / "planted-outcomes.csv")
    at = pd.to_datetime(outcomes["converted_at"], utc=True, format="ISO8601")
    before = pd.Timestamp(CUT)
    events[events["timestamp"] <= before].to_parquet(tmp_path / "events.parquet")
    outcomes.assign(converted_at=outcomes["converted_at"].where(at <= before)).to_csv(
        tmp_path / "outcomes.csv", index=False)
    ids = np.array(sorted(events.loc[events["timestamp"] <= before, "lead_id"].unique()),
                   dtype=object)
    runs = []
    for folder in (DATA, tmp_path):
        names = ("planted-events.parquet", "planted-outcomes.csv") if folder == DATA else (
            "events.parquet", "outcomes.csv")
        data = open_inputs(str(folder / names[0]), str(DATA / "planted-leads.csv"),
                           str(folder / names[1]))
        runs.append(backtest_predictive(data, cut, 30, ids)[0])
    assert runs[0] == pytest.approx(runs[1], abs=1e-9)
    assert runs[0].std() > 0


def test_cli_evaluate_predictive_shows_it_beside_the_model(tmp_path) -> None:
    done = run("evaluate", "--model", str(HAND), "--events", str(DATA / "planted-events.parquet"),
               "--leads", str(DATA / "planted-leads.csv"), "--outcomes",
               str(DATA / "planted-outcomes.csv"), "--as-of", CUT, "--window-days", "30",
               "--bootstrap", "20", "--predictive", "--report", "r.html", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ranking = done.stdout.split("Ranking")[1]
    assert "planted-hand" in ranking and "predictive (LightGBM)" in ranking
    assert "Difference from planted-hand" in done.stdout
    assert "predictive (LightGBM)" in (tmp_path / "r.html").read_text()
    assert "evaluated in" in done.stderr


def test_progress_bar_shows_the_share_done() -> None:
    import io

    from rich.console import Console

    from leadscore.cli.progress import progress_bar

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    with progress_bar(console) as step:
        step("reading events", 0.0)
        step("scoring", 0.4)
        step("a step without a share")
        step("bootstrapping", 0.9)
    text = screen.getvalue()
    assert "scoring" in text and " 40%" in text and " 90%" in text
    # a step without a share keeps the bar where it was
    assert text.index("a step without a share") < text.index(" 90%")
    shown = text.split("a step without a share")[1].split("\r")[0]
    assert " 40%" in shown
