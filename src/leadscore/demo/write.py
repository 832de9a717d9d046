"""Write the demo world to a folder: Parquet tables, and CSV / JSON-lines variants."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from leadscore.demo.world import World
from leadscore.timeutil import iso

FORMATS = ("parquet", "csv", "jsonl")


def write_world(world: World, folder: str | Path, *,
                formats: Iterable[str] = ("parquet",)) -> dict[str, Path]:
    """Write events, leads and personas to `folder` in each of `formats`; return the paths.

    parquet: events.parquet, leads.parquet; csv: events.csv, leads.csv (ISO timestamps);
    jsonl: events.jsonl of Segment track/page messages, leads.jsonl of identify messages, and
    export.jsonl, both in one file (a Segment export: identify messages, then the events).
    personas.csv (who each lead really is) is always written.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for kind in formats:
        if kind not in FORMATS:
            raise ValueError(f"unknown format {kind!r}; expected one of {', '.join(FORMATS)}")
        if kind == "parquet":
            paths["events.parquet"] = _parquet(world.events, out / "events.parquet")
            paths["leads.parquet"] = _parquet(world.leads, out / "leads.parquet")
        elif kind == "csv":
            paths["events.csv"] = _csv(_iso_timestamps(world.events), out / "events.csv")
            paths["leads.csv"] = _csv(world.leads, out / "leads.csv")
        else:
            paths["events.jsonl"] = _jsonl(segment_messages(world.events), out / "events.jsonl")
            paths["leads.jsonl"] = _jsonl(identify_messages(world.leads), out / "leads.jsonl")
            paths["export.jsonl"] = _jsonl([*identify_messages(world.leads),
                                            *segment_messages(world.events)],
                                           out / "export.jsonl")
    paths["personas.csv"] = _csv(world.personas, out / "personas.csv")
    return paths


def segment_messages(events: pa.Table) -> list[dict[str, Any]]:
    """The events as Segment `track` / `page` messages (properties without nulls)."""
    messages = []
    for row in _rows(_iso_timestamps(events)):
        properties = {k: v for k, v in row.items()
                      if k not in ("lead_id", "timestamp", "type", "event", "path")}
        message: dict[str, Any] = {"type": row["type"], "userId": row["lead_id"],
                                   "timestamp": row["timestamp"]}
        if row["type"] == "page":
            properties["path"] = row["path"]
        else:
            message["event"] = row["event"]
        message["properties"] = properties
        messages.append(message)
    return messages


def identify_messages(leads: pa.Table) -> list[dict[str, Any]]:
    """The leads as Segment `identify` messages; account traits go under `traits.account`
    (Segment itself would send them in `group` calls)."""
    messages = []
    for row in _rows(leads):
        lead_id = row.pop("lead_id")
        account = {k.removeprefix("account."): row.pop(k) for k in list(row)
                   if k.startswith("account.")}
        traits: dict[str, Any] = {**row, "account": account} if account else row
        messages.append({"type": "identify", "userId": lead_id, "traits": traits})
    return messages


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if v is not None} for row in table.to_pylist()]


def _iso_timestamps(events: pa.Table) -> pa.Table:
    stamps = events.column("timestamp").cast(pa.int64()).to_pylist()
    index = events.schema.get_field_index("timestamp")
    return events.set_column(index, "timestamp", pa.array([iso(t) for t in stamps]))


def _parquet(table: pa.Table, path: Path) -> Path:
    pq.write_table(table, path)
    return path


def _csv(table: pa.Table, path: Path) -> Path:
    pacsv.write_csv(table, path)
    return path


def _jsonl(rows: list[dict[str, Any]], path: Path) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
