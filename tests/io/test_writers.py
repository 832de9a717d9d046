"""Files people read: floats rounded to the stated precision, times as ISO 8601 with `T` and
`Z`; Parquet keeps every digit."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from leadscore.io.writers import DECIMALS, write_table

TABLE = pa.table({
    "lead_id": ["a", "b"],
    "score": [104.71196395953724, 0.406517365922],
    "as_of": pa.array([datetime(2026, 6, 1, tzinfo=UTC),
                       datetime(2026, 6, 1, 12, 30, 5, 250000, tzinfo=UTC)],
                      pa.timestamp("us", tz="UTC")),
    "interests": [[{"topic": "oil", "weight": 1.23456789123}], None],
})


def test_csv_rounds_floats_and_writes_iso_times(tmp_path: Path) -> None:
    write_table(TABLE, tmp_path / "s.csv")
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert DECIMALS == 6
    assert [r["score"] for r in rows] == ["104.711964", "0.406517"]
    assert [r["as_of"] for r in rows] == ["2026-06-01T00:00:00Z", "2026-06-01T12:30:05.250000Z"]
    assert json.loads(rows[0]["interests"]) == [{"topic": "oil", "weight": 1.234568}]


def test_json_lines_round_nested_floats_too(tmp_path: Path) -> None:
    write_table(TABLE, tmp_path / "s.jsonl")
    first = json.loads((tmp_path / "s.jsonl").read_text().splitlines()[0])
    assert first["score"] == 104.711964 and first["as_of"] == "2026-06-01T00:00:00Z"
    assert first["interests"] == [{"topic": "oil", "weight": 1.234568}]


def test_parquet_keeps_every_digit(tmp_path: Path) -> None:
    write_table(TABLE, tmp_path / "s.parquet")
    assert pq.read_table(tmp_path / "s.parquet").column("score").to_pylist() == \
        TABLE.column("score").to_pylist()
