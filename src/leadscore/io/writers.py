"""Write tables (scores, rejected rows) as CSV, Parquet or JSON, chosen by the file extension."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from leadscore.errors import InputError

WRITE_SUFFIXES = (".csv", ".parquet", ".jsonl", ".ndjson", ".json")


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
        pacsv.write_csv(_flat(table), target)
    else:
        rows = table.to_pylist()
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
            text = pa.array([None if v is None else json.dumps(v, ensure_ascii=False,
                                                               default=_json_value)
                             for v in table.column(i).to_pylist()], pa.string())
            table = table.set_column(i, pa.field(field.name, pa.string()), text)
    return table


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
