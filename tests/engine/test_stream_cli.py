"""`leadscore score` and `leadscore explain` on a Segment message stream (issue #15): the
issue's command scores, `--accounts` works from the stream alone, a run that scores no one
says why."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from typer.testing import CliRunner

from leadscore.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
B2C = str(EXAMPLES / "b2c-art-supplies.yaml")
B2B = str(EXAMPLES / "b2b-software.yaml")
runner = CliRunner()

EXPORT = [
    {"type": "page", "anonymousId": "a-1", "messageId": "p1",
     "timestamp": "2026-03-01T10:00:00Z", "properties": {"path": "/products/brushes"}},
    {"type": "identify", "userId": "c-1", "anonymousId": "a-1", "messageId": "i1",
     "timestamp": "2026-03-02T10:00:00Z",
     "traits": {"segment": "consumer", "age": 30, "occupation": "artist"}},
    {"type": "track", "userId": "c-1", "messageId": "t1", "timestamp": "2026-03-03T10:00:00Z",
     "event": "Newsletter Subscribed"},
    {"type": "identify", "userId": "b-1", "messageId": "i2", "timestamp": "2026-03-01T10:00:00Z",
     "traits": {"segment": "business", "seniority": "vp"}},
    {"type": "group", "userId": "b-1", "groupId": "acme", "messageId": "g1",
     "timestamp": "2026-03-01T11:00:00Z", "traits": {"industry": "software", "employees": 300}},
]


def export(tmp_path: Path) -> Path:
    path = tmp_path / "export.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in EXPORT))
    return path


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_the_issues_command_scores_identify_and_track_messages(tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    result = runner.invoke(app, ["score", "--model", B2C, "--events", str(export(tmp_path)),
                                 "--out", str(out), "--as-of", "2026-03-10T00:00:00Z"])
    assert result.exit_code == 0, result.output
    scored = rows(out)
    assert [(r["lead_id"], r["fit"]) for r in scored] == [("c-1", "20")]
    assert "no lead was scored" not in result.output


def test_accounts_from_the_stream_alone(tmp_path: Path) -> None:
    out, accounts = tmp_path / "s.csv", tmp_path / "a.csv"
    result = runner.invoke(app, ["score", "--model", B2B, "--events", str(export(tmp_path)),
                                 "--out", str(out), "--accounts", str(accounts),
                                 "--as-of", "2026-03-10T00:00:00Z"])
    assert result.exit_code == 0, result.output
    assert [r["account_id"] for r in rows(accounts)] == ["acme"]
    assert [(r["lead_id"], r["fit"]) for r in rows(out)] == [("b-1", "40")]


def test_a_run_that_scores_no_one_says_why(tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    early = runner.invoke(app, ["score", "--model", B2C, "--events", str(export(tmp_path)),
                                "--out", str(out), "--as-of", "2026-01-01T00:00:00Z"])
    assert early.exit_code == 0, early.output
    assert "no lead was scored" in early.output and "2026-01-01" in early.output
    events = tmp_path / "events.csv"
    events.write_text("lead_id,timestamp,type,event\nx,2026-05-01T00:00:00Z,track,A\n")
    later = runner.invoke(app, ["score", "--model", B2C, "--events", str(events),
                                "--out", str(out), "--as-of", "2026-04-01T00:00:00Z"])
    assert "no event is at or before --as-of" in later.output
    assert "2026-05-01" in later.output                  # when the first one is
    excluded = runner.invoke(app, ["score", "--model", B2B, "--events", str(events),
                                   "--out", str(out), "--as-of", "2026-06-01T00:00:00Z"])
    assert "b2b-software: no lead was scored: its applies_to" in excluded.output
    assert "excluded all 1 lead " in excluded.output


def test_explain_a_lead_of_a_stream(tmp_path: Path) -> None:
    result = runner.invoke(app, ["explain", "--model", B2C, "--events", str(export(tmp_path)),
                                 "--lead", "c-1", "--as-of", "2026-03-10T00:00:00Z"])
    assert result.exit_code == 0, result.output
    assert "creative occupation" in result.output      # the identify's trait counted
    assert "store" in result.output or "product" in result.output


def test_programs_simulate_reads_the_example_stream_as_the_tables(tmp_path: Path) -> None:
    journeys = {}
    for kind in ("csv", "jsonl"):
        out = tmp_path / f"j-{kind}.csv"
        result = runner.invoke(app, [
            "programs", "simulate", "--program", str(EXAMPLES / "programs" / "welcome.yaml"),
            "--model", B2C, "--events", str(EXAMPLES / "data" / f"events.{kind}"),
            "--leads", str(EXAMPLES / "data" / f"leads.{kind}"),
            "--content", str(EXAMPLES / "content.yaml"), "--from", "2026-01-01T00:00:00Z",
            "--to", "2026-06-01T00:00:00Z", "--out", str(out)])
        assert result.exit_code == 0, result.output
        journeys[kind] = rows(out)
    assert journeys["jsonl"] == journeys["csv"] and len(journeys["csv"]) > 50
