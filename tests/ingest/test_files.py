"""`import_events`: files and tables go through the same ingestion path as the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from leadscore import load_model
from leadscore.service import Service

EXAMPLES = Path(__file__).parents[2] / "examples"
MODELS = [load_model(EXAMPLES / "b2b-software.yaml"),
          load_model(EXAMPLES / "b2c-art-supplies.yaml")]


@pytest.fixture
def service(db_url: str) -> Iterator[Service]:
    with Service.open(db_url, models=MODELS, background=False) as opened:
        yield opened


def test_csv_leads_and_events_import_once(service: Service) -> None:
    seen: list[tuple[int, int]] = []
    leads = service.import_events(EXAMPLES / "data" / "leads.csv")
    assert (leads.kind, leads.rejected) == ("leads", 0)
    assert leads.accepted >= 70          # identify, and group where account columns are set
    found = service.import_events(EXAMPLES / "data" / "events.csv",
                                  progress=lambda done, total: seen.append((done, total)))
    assert (found.kind, found.accepted, found.rejected) == ("events", 1265, 0)
    assert seen[0] == (0, 1265) and seen[-1] == (1265, 1265)
    again = service.import_events(EXAMPLES / "data" / "events.csv")
    assert (again.accepted, again.duplicates) == (0, 1265)
    lead = service.get_lead("b-00001", model="b2b-software")
    assert lead["account"]["industry"] == "software"
    assert "company size" in [r["rule"] for r in lead["reasons"]]   # reads account.employees
    assert service.list_leads(limit=1)[1] >= 70


def test_segment_json_lines_and_parquet(service: Service, tmp_path: Path) -> None:
    result = service.import_events(EXAMPLES / "data" / "leads.jsonl")
    assert (result.kind, result.accepted, result.rejected) == ("segment", 70, 0)
    table = pa.table({"lead_id": ["c-00001", "c-00001", ""],
                      "timestamp": ["2026-05-01T10:00:00Z", "2026-05-02T10:00:00Z",
                                    "2026-05-02T10:00:00Z"],
                      "event": ["Newsletter Subscribed", None, "Newsletter Subscribed"],
                      "path": [None, "/stores/hamburg", None]})
    pq.write_table(table, tmp_path / "events.parquet")
    found = service.import_events(tmp_path / "events.parquet")
    assert (found.accepted, found.rejected) == (2, 1)
    assert found.errors[0]["field"] == "lead_id"
    lead = service.get_lead("c-00001", model="b2c-art-supplies")
    assert {r["rule"] for r in lead["reasons"]} >= {"newsletter signup", "store locator"}


def test_bad_lines_are_reported_with_their_line_number(service: Service,
                                                       tmp_path: Path) -> None:
    path = tmp_path / "messages.jsonl"
    path.write_text("\n".join([
        json.dumps({"type": "track", "userId": "ann", "event": "Demo Requested",
                    "timestamp": "2026-05-01T00:00:00Z"}),
        "{not json",
        json.dumps({"type": "track", "event": "Demo Requested"}),
    ]) + "\n")
    result = service.import_events(path)
    assert result.accepted == 1 and result.rejected == 2
    assert sorted((e["row"], e["field"]) for e in result.errors) == [(2, None), (3, "userId")]
