"""Write tables (scores, rejected rows) as CSV, Parquet or JSON, chosen by the file extension.

CSV and JSON are read by people: their floats are rounded to `DECIMALS` places (points are
never finer than that; a score of 104.71196395953724 reads as 104.711964) and their times are
ISO 8601 (`2026-06-01T00:00:00Z`). Parquet is for programs and keeps every digit.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from leadscore.errors import InputError

WRITE_SUFFIXES = (".csv", ".parquet", ".jsonl", ".ndjson", ".json")
DECIMALS = 6


def write_table(table: pa.Table, path: str | Path) -> None:
    """Write `table` to `path`: `.csv`, `.parquet`, `.jsonl`/`.ndjson` (one JSON object a line)
    or `.json` (one JSON array); any other extension is an InputError."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in WRITE_SUFFIXES:
        raise InputError(f"{target}: unknown output type {suffix or '(no extension)'!r}; "
                         f"expected one of {', '.join(WRITE_SUFFIXES)}")
    if suffix == ".parquet":
        pq.write_table(table, target)
    elif suffix == ".csv":
        pacsv.write_csv(_readable(_flat(table)), target)
    else:
        rows = [{k: _rounded(v) for k, v in row.items()} for row in table.to_pylist()]
        with target.open("w", encoding="utf-8") as handle:
            if suffix == ".json":
                json.dump(rows, handle, default=_json_value, ensure_ascii=False)
                handle.write("\n")
            else:
                for row in rows:
                    handle.write(json.dumps(row, default=_json_value, ensure_ascii=False))
                    handle.write("\n")


def _flat(table: pa.Table) -> pa.Table:
    """List and struct columns (interests, roles) as JSON text: CSV has no nested values."""
    for i, field in enumerate(table.schema):
        if pa.types.is_list(field.type) or pa.types.is_struct(field.type):
            text = pa.array([None if v is None else json.dumps(_rounded(v), ensure_ascii=False,
                                                               default=_json_value)
                             for v in table.column(i).to_pylist()], pa.string())
            table = table.set_column(i, pa.field(field.name, pa.string()), text)
    return table


def _readable(table: pa.Table) -> pa.Table:
    """Floats rounded to DECIMALS places; timestamps as ISO 8601 text with the `T` and `Z`
    (pyarrow's CSV writer would print `2026-06-01 00:00:00.000000Z`)."""
    for i, field in enumerate(table.schema):
        column = table.column(i)
        if pa.types.is_floating(field.type):
            table = table.set_column(i, field, pc.round(column, DECIMALS))
        elif pa.types.is_timestamp(field.type):
            utc = column.cast(pa.timestamp("us", tz="UTC")) if field.type.tz else column
            text = pc.strftime(utc, format="%Y-%m-%dT%H:%M:%S")
            text = pc.replace_substring_regex(text, r"\.0+$", "")        # whole seconds
            text = pc.binary_join_element_wise(text, "Z", "") if field.type.tz else text
            table = table.set_column(i, pa.field(field.name, pa.string()), text)
    return table


def _rounded(value: Any) -> Any:
    """A JSON value with its floats (nested ones too) rounded to DECIMALS places."""
    if isinstance(value, float):
        return round(value, DECIMALS)
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
