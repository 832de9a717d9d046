"""Readers: every source kind into the canonical views; bad rows counted, kept, or raised."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from leadscore.errors import EventError, InputError
from leadscore.io import events_of, lead_of, read_events, read_leads, write_table
from leadscore.timeutil import parse_timestamp

CSV = """lead_id,timestamp,event,path,topic,context.locale
1,2026-01-01T10:00:00+02:00,Signed Up,,paint,de
,2026-01-01,Clicked,,paper,
3,yesterday,Clicked,,paper,
4,1767225600,,/p/a?x=1#top,,
5,2026-01-02 00:00:00,Clicked,,,
"""


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


def test_csv_to_the_canonical_schema_with_bad_rows_counted(tmp_path: Path,
                                                           con: duckdb.DuckDBPyConnection) -> None:
    source = tmp_path / "events.csv"
    source.write_text(CSV)
    report = read_events(source, con)
    assert (report.rows, report.rejected) == (3, 2)
    assert list(report.columns)[:5] == ["lead_id", "ts", "type", "event", "path"]
    assert {"properties.topic", "context.locale"} <= set(report.columns)
    rows = con.sql("SELECT lead_id, ts, type, path FROM events ORDER BY lead_id").fetchall()
    assert rows == [
        ("1", parse_timestamp("2026-01-01T08:00:00Z"), "track", None),
        ("4", 1767225600 * 1_000_000, "page", "/p/a"),     # epoch seconds; a page: path set
        ("5", parse_timestamp("2026-01-02T00:00:00Z"), "track", None),  # naive = UTC
    ]
    assert report.rejected_rows.to_pylist() == [
        {"row": 2, "field": "lead_id", "reason": "no lead_id", "value": None},
        {"row": 3, "field": "timestamp", "reason": "not a timestamp", "value": "yesterday"},
    ]
    report.write_rejected(tmp_path / "rejected.csv")
    assert "yesterday" in (tmp_path / "rejected.csv").read_text()


def test_strict_raises_on_the_first_bad_row(tmp_path: Path,
                                            con: duckdb.DuckDBPyConnection) -> None:
    source = tmp_path / "events.csv"
    source.write_text(CSV)
    with pytest.raises(EventError) as info:
        read_events(source, con, strict=True)
    assert (info.value.row, info.value.field) == (2, "lead_id")
    assert "events.csv" in str(info.value)


def test_missing_file_and_missing_column(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(InputError, match=r"nope\.parquet: file not found"):
        read_events(tmp_path / "nope.parquet", con)
    source = tmp_path / "e.csv"
    source.write_text("lead_id,when\n1,2026-01-01\n")
    with pytest.raises(InputError, match="no column 'timestamp'; columns found: lead_id, when"):
        read_events(source, con)


def test_unknown_type_is_rejected(con: duckdb.DuckDBPyConnection) -> None:
    table = pa.table({"lead_id": ["a", "b"], "timestamp": ["2026-01-01", "2026-01-01"],
                      "type": ["track", "identify"], "event": ["X", None]})
    report = read_events(table, con)
    assert report.rejected == 1 and report.rejected_rows["field"].to_pylist() == ["type"]


def test_data_frames_and_parquet_directories(tmp_path: Path,
                                            con: duckdb.DuckDBPyConnection) -> None:
    frame = pd.DataFrame({"lead_id": ["a", "b"], "timestamp": pd.to_datetime(
        ["2026-01-01", "2026-01-02"], utc=True), "event": ["X", "Y"], "price": [1.5, None]})
    assert read_events(frame, con, name="p").rows == 2
    assert con.sql('SELECT "properties.price" FROM p ORDER BY lead_id').fetchall() == [
        (1.5,), (None,)]
    assert read_events(pl.from_pandas(frame), con, name="q").rows == 2
    (tmp_path / "dir").mkdir()
    pq.write_table(pa.Table.from_pandas(frame), tmp_path / "dir" / "part-0.parquet")
    pq.write_table(pa.Table.from_pandas(frame), tmp_path / "dir" / "part-1.parquet")
    assert read_events(tmp_path / "dir", con, name="r").rows == 4
    assert read_events(str(tmp_path / "dir" / "*.parquet"), con, name="s").rows == 4


def test_segment_json_lines(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    messages = [
        {"type": "identify", "userId": "u1", "traits": {"email": "u1@x.org",
                                                        "address": {"city": "Berlin"}}},
        {"type": "track", "userId": "u1", "event": "Clicked", "timestamp": "2026-01-01T00:00:00Z",
         "properties": {"topic": "paint", "item": {"sku": "A4"}}},
        {"type": "page", "anonymousId": "anon", "timestamp": "2026-01-02T00:00:00Z",
         "properties": {"url": "https://shop.example/products/a?b=c"}},
        {"type": "track", "userId": "u1", "timestamp": "2026-01-01T00:00:00Z"},
    ]
    lines = [json.dumps(m) for m in messages]
    lines.insert(2, "{not json")
    source = tmp_path / "messages.jsonl"
    source.write_text("\n".join(lines) + "\n")
    report = read_events(source, con)
    assert (report.rows, report.rejected, report.other_messages) == (2, 2, {"identify": 1})
    assert report.rejected_rows["row"].to_pylist() == [3, 5]
    rows = con.sql('SELECT lead_id, type, path, "properties.item.sku" FROM events '
                   "ORDER BY ts").fetchall()
    assert rows == [("u1", "track", None, "A4"), ("anon", "page", "/products/a", None)]
    leads = read_leads(source, con)
    assert leads.rows == 1
    assert lead_of(con, "u1") is not None
    assert lead_of(con, "u1").traits == {"email": "u1@x.org", "address.city": "Berlin"}  # type: ignore[union-attr]


def test_leads_traits_accounts_and_duplicates(con: duckdb.DuckDBPyConnection) -> None:
    table = pa.table({"lead_id": ["a", "b", "a"], "age": [30, 40, 50],
                      "account.industry": ["software", None, "retail"]})
    report = read_leads(table, con)
    assert (report.rows, report.rejected) == (2, 1)
    assert list(report.columns) == ["lead_id", "traits.age", "account.industry"]
    lead = lead_of(con, "a")
    assert lead is not None and lead.traits == {"age": 30}
    assert lead.account == {"industry": "software"} and lead.get("traits.age") == 30
    assert lead_of(con, "zzz") is None


def test_events_of_one_lead(con: duckdb.DuckDBPyConnection) -> None:
    table = pa.table({"lead_id": ["a", "a", "b"], "timestamp": [3_000_000, 1_000_000, 2],
                      "event": ["Y", "X", "Z"], "topic": ["t", None, None]})
    read_events(table, con)
    got = events_of(con, "a")
    assert [(e.event, e.timestamp) for e in got] == [("X", 1_000_000_000_000),
                                                     ("Y", 3_000_000_000_000)]
    assert got[1].get("properties.topic") == "t" and got[0].properties == {}


def test_write_table_by_extension(tmp_path: Path) -> None:
    table = pa.table({"a": [1, 2], "b": ["x", None]})
    for name in ("t.csv", "t.parquet", "t.jsonl", "t.json"):
        write_table(table, tmp_path / name)
    assert pq.read_table(tmp_path / "t.parquet").equals(table)
    assert json.loads((tmp_path / "t.json").read_text()) == [{"a": 1, "b": "x"},
                                                             {"a": 2, "b": None}]
    assert (tmp_path / "t.jsonl").read_text().splitlines()[1] == '{"a": 2, "b": null}'
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == '"a","b"'
    with pytest.raises(InputError, match=r"unknown output type '\.xlsx'"):
        write_table(table, tmp_path / "t.xlsx")
