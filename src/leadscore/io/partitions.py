"""Events spread over many files (hive-style partitions such as `month=2026-01/part-0.parquet`):
list them, group them by partition, and register any subset as one canonical events view —
the same columns `leadscore.io.read_events` gives for the whole set."""

from __future__ import annotations

import glob as globbing
import os
from itertools import count
from pathlib import Path

import duckdb

from leadscore.errors import InputError
from leadscore.io.readers import column_types, csv_reader, event_columns
from leadscore.io.sqltext import literal, quote

_sequence = count()
EVENT_SUFFIXES = (".parquet", ".pq", ".csv")


def list_files(source: str | Path) -> list[str]:
    """The files of a file, a folder (every Parquet/CSV file below it) or a glob, sorted."""
    text = str(source)
    if any(mark in text for mark in "*?["):
        files = sorted(globbing.glob(text, recursive=True))
    elif Path(text).is_dir():
        files = sorted(os.path.join(folder, name)
                       for folder, _, names in os.walk(text, followlinks=True)
                       for name in names if Path(name).suffix.lower() in EVENT_SUFFIXES
                       and not name.startswith("."))
    elif Path(text).exists():
        files = [text]
    else:
        raise InputError(f"{text}: file not found")
    if not files:
        raise InputError(f"{text}: no .parquet or .csv file there")
    return files


def partitions(files: list[str]) -> dict[str, list[str]]:
    """Files grouped by their hive partition folder (`month=2026-01`…); '' for none."""
    out: dict[str, list[str]] = {}
    for file in files:
        parts = [p for p in Path(file).parent.parts if "=" in p]
        out.setdefault("/".join(parts), []).append(file)
    return out


def signature(file: str) -> list[int]:
    """What tells a changed file from the one read before: size and modification time."""
    stat = os.stat(file)
    return [stat.st_size, stat.st_mtime_ns]


def read_event_files(files: list[str], con: duckdb.DuckDBPyConnection, name: str) -> str:
    """Register `files` (Parquet or CSV, not mixed) as the canonical events view `name`; rows
    `read_events` would reject are left out (`read_events` on the whole set counts them)."""
    raw = f"{name}__files_{next(_sequence)}"
    listed = "[" + ", ".join(literal(f) for f in files) + "]"
    if all(f.lower().endswith((".parquet", ".pq")) for f in files):
        reader = f"read_parquet({listed}, union_by_name = true)"
    elif all(f.lower().endswith(".csv") for f in files):
        reader = csv_reader(con, listed, files[0])
    else:
        raise InputError(f"{files[0]}: mixed file types; use Parquet or CSV throughout")
    con.sql(f"CREATE OR REPLACE TEMP VIEW {quote(raw)} AS SELECT * FROM {reader}")
    canonical, checks = event_columns(column_types(con, raw), files[0])
    select = ", ".join(f"{sql} AS {quote(c)}" for c, sql, _ in canonical)
    reasons = " OR ".join(f"({c[0]})" for c in checks)
    con.sql(f"CREATE OR REPLACE TEMP VIEW {quote(name)} AS SELECT {select} "
            f"FROM {quote(raw)} WHERE NOT coalesce({reasons}, false)")
    return name
