"""Batch segments beyond the random worlds of test_agreement: what `customer.*` reads for a
lead its model does not apply to, and `leadscore segments --engine spark` on files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.engine.incremental import Scorer
from leadscore.events import Event
from leadscore.model.loader import load_model
from leadscore.segments.batch import segment_many
from leadscore.segments.definition import load_segment, order
from leadscore.segments.evaluate import facts_from_scorer, members
from leadscore.timeutil import parse_timestamp

AS_OF = "2026-05-01T12:00:00Z"
MODEL = """
name: de-shop
applies_to: {traits.country: {eq: DE}}
engagement:
  rules:
    - {name: order, event: Order Completed, points: 20}
    - {name: paint pages, page: /paint/*, points: 4}
interests:
  - {topic: "{properties.topic}", event: Email Link Clicked, points: 3}
temperature: {hot: 30, warm: 10}
lifecycle: [{stage: customer, on: {event: Order Completed}}]
"""
SEGMENTS = {
    "buyers.yaml": "name: buyers\nmodel: de-shop\nwhen: {customer.frequency: {gte: 1}}\n",
    "quote.yaml": """
name: "o'reilly readers"
model: de-shop
when:
  any:
    - {interest.o'reilly: {gte: 3}}
    - all:
        - {in_segment: buyers}
        - {did: {page: /paint/*, within_days: 7}}
        - {score.temperature: {in: [hot, warm]}}
""",
}
EVENTS = [("de", "2026-04-30T10:00:00Z", "track", "Order Completed", "", "", "12.5"),
          ("fr", "2026-04-30T11:00:00Z", "track", "Order Completed", "", "", "99"),
          ("de", "2026-04-29T10:00:00Z", "page", "", "/paint/oil", "", ""),
          ("fr", "2026-04-29T10:00:00Z", "page", "", "/paint/oil", "", ""),
          ("at", "2026-04-20T10:00:00Z", "track", "Email Link Clicked", "", "o'reilly", ""),
          ("at", "2026-04-21T10:00:00Z", "track", "Order Completed", "", "", "x")]
LEADS = [("de", "DE"), ("fr", "FR"), ("at", "DE"), ("nobody", "DE")]


def write_files(folder: Path) -> dict[str, str]:
    (folder / "events.csv").write_text("lead_id,timestamp,type,event,path,topic,revenue\n" +
                                       "".join(",".join(row) + "\n" for row in EVENTS))
    (folder / "leads.csv").write_text("lead_id,country\n" +
                                      "".join(",".join(row) + "\n" for row in LEADS))
    (folder / "model.yaml").write_text(MODEL)
    for name, text in SEGMENTS.items():
        (folder / name).write_text(text)
    return {"events": str(folder / "events.csv"), "leads": str(folder / "leads.csv"),
            "model": str(folder / "model.yaml")}


def test_customer_facts_are_read_only_where_the_model_applies() -> None:
    """fr bought but is not a lead of `de-shop` (applies_to): live gives it no customer facts,
    and the batch must not either (it read a separate purchase query for every lead)."""
    model = load_model("de-shop.yaml", text=MODEL)
    segments = order([load_segment(n, text=t) for n, t in SEGMENTS.items()])
    as_of = parse_timestamp(AS_OF)
    events = [Event(lead, parse_timestamp(at), kind, name or None, path or None,
                    {k: v for k, v in (("topic", topic), ("revenue", revenue)) if v})
              for lead, at, kind, name, path, topic, revenue in EVENTS]
    table = pa.table({"lead_id": [e.lead_id for e in events],
                      "timestamp": [e.timestamp for e in events],
                      "type": [e.type for e in events], "event": [e.event for e in events],
                      "path": [e.path for e in events],
                      "topic": [e.properties.get("topic") for e in events],
                      "revenue": [e.properties.get("revenue") for e in events]})
    leads = pa.table({"lead_id": [r[0] for r in LEADS], "country": [r[1] for r in LEADS]})
    batch = segment_many(segments, [model], table, leads, as_of=AS_OF)
    got = {(r["segment"], r["lead_id"]) for r in batch.to_pylist()}
    assert got == {("buyers", "de"), ("buyers", "at"), ("o'reilly readers", "de"),
                   ("o'reilly readers", "at")}

    scorer = Scorer(model)
    for lead, country in LEADS:
        scorer.identify(lead, {"country": country}, as_of=as_of)
    scorer.update_many(sorted(events, key=lambda e: e.timestamp))
    live = set()
    for lead, _ in LEADS:
        facts = facts_from_scorer(scorer, lead, "de-shop", [e for e in events
                                                             if e.lead_id == lead], as_of)
        live |= {(name, lead) for name in members(segments, facts)}
    assert live == got
    # the member's entered_at: its latest event
    de = next(r for r in batch.to_pylist() if r["lead_id"] == "de")
    assert de["entered_at"].timestamp() * 1e6 == parse_timestamp(EVENTS[0][1])


def test_an_unknown_engine_is_an_error(tmp_path: Path) -> None:
    files = write_files(tmp_path)
    result = CliRunner().invoke(app, [
        "segments", "--segment", str(tmp_path / "buyers.yaml"), "--model", files["model"],
        "--events", files["events"], "--out", str(tmp_path / "m.csv"), "--engine", "presto"])
    assert result.exit_code == 1 and "expected duckdb or spark" in result.output
    assert not (tmp_path / "m.csv").exists()


@pytest.mark.spark
def test_the_segments_command_on_spark_writes_what_duckdb_writes(spark: Any,
                                                                  tmp_path: Path) -> None:
    """CSV files read by Spark itself (text columns: `revenue` "x" is no number, ages and
    countries compare as DuckDB's typed columns do), a quote in a segment name and a topic."""
    files = write_files(tmp_path)
    outputs = {}
    for engine in ("duckdb", "spark"):
        out = tmp_path / f"members-{engine}.csv"
        result = CliRunner().invoke(app, [
            "segments", "--segment", str(tmp_path / "buyers.yaml"), "--segment",
            str(tmp_path / "quote.yaml"), "--model", files["model"], "--events",
            files["events"], "--leads", files["leads"], "--as-of", AS_OF, "--out", str(out),
            "--engine", engine, "--master", "local[2]"])
        assert result.exit_code == 0, result.output
        assert "buyers: 2 leads" in result.output and "o'reilly readers: 2 leads" in \
            result.output
        outputs[engine] = out.read_text()
    assert outputs["spark"] == outputs["duckdb"]
    rows = [line.replace('"', "").split(",") for line in outputs["duckdb"].splitlines()[1:]]
    assert [(lead, segment, parse_timestamp(at)) for lead, segment, at in rows] == [
        (lead, segment, parse_timestamp(at)) for lead, segment, at in (
            ("at", "buyers", "2026-04-21T10:00:00Z"), ("de", "buyers", "2026-04-30T10:00:00Z"),
            ("at", "o'reilly readers", "2026-04-21T10:00:00Z"),
            ("de", "o'reilly readers", "2026-04-30T10:00:00Z"))]


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("spark", marks=pytest.mark.spark)])
def test_the_segments_command_says_how_many_bad_rows_it_skipped(
        tmp_path: Path, engine: str, request: pytest.FixtureRequest) -> None:
    files = write_files(tmp_path)
    with open(files["events"], "a") as out:
        out.write("at,not a time,track,Order Completed,,,\n")
    if engine == "spark":
        request.getfixturevalue("spark")        # the shared local[2] session
    result = CliRunner().invoke(app, [
        "segments", "--segment", str(tmp_path / "buyers.yaml"), "--model", files["model"],
        "--events", files["events"], "--leads", files["leads"], "--as-of", AS_OF,
        "--out", str(tmp_path / "m.csv"), "--engine", engine, "--master", "local[2]"])
    assert result.exit_code == 0, result.output
    assert f"warning: {files['events']}: 1 bad event row skipped" in result.output
    if engine == "duckdb":      # Spark counts the bad rows; DuckDB's reader also says why
        assert f"warning: {files['events']}: 1 bad event row skipped (the first: row " \
            in result.output
        assert "field 'timestamp': not a timestamp)" in result.output
    assert "RejectedRowsWarning" not in result.output      # a line, not a Python warning


@pytest.mark.spark
def test_the_segments_command_on_spark_reads_a_message_stream(spark: Any, tmp_path: Path
                                                              ) -> None:
    """`--engine spark` with Segment JSON lines (the example export): the stream stage on
    Spark, the same members as DuckDB (Spark's `register` had read `.jsonl` as Parquet)."""
    examples = Path(__file__).resolve().parents[2] / "examples"
    outputs = {}
    for engine in ("duckdb", "spark"):
        out = tmp_path / f"members-{engine}.csv"
        result = CliRunner().invoke(app, [
            "segments", *(a for s in ("engaged-painters", "loyal-customers", "lapsed-customers")
                          for a in ("--segment", str(examples / "segments" / f"{s}.yaml"))),
            "--model", str(examples / "b2c-art-supplies.yaml"),
            "--events", str(examples / "data" / "events.jsonl"),
            "--leads", str(examples / "data" / "leads.jsonl"), "--as-of",
            "2026-06-01T00:00:00Z", "--out", str(out), "--engine", engine,
            "--master", "local[2]"])
        assert result.exit_code == 0, result.output
        outputs[engine] = out.read_text()
    assert outputs["spark"] == outputs["duckdb"]
    assert len(outputs["duckdb"].splitlines()) > 1       # someone is in a segment
