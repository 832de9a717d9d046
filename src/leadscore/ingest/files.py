"""`leadscore import`: events and leads from files, through the same path as the API.

Segment JSON (lines, an array or a `{"batch": [...]}` body) is ingested message by message as
sent. Tables (CSV, Parquet, Arrow, pandas, polars; read by `leadscore.io`) become messages:
an events row a `track`/`page`/`screen` message, a leads row an `identify` message (plus a
`group` message where it has `account.*` columns; the account's id is `account.id`, else
`account.name`, else `account.domain`, else one account per lead). Rows get a messageId
derived from their content, so importing a file twice stores it once.

Messages go in batches through the bulk import path (`ingest.bulk`: a batch stored and scored
at once); a batch that may merge leads (an alias, say) goes message by message through
`Service.ingest`, and the result says why (`by_message`, `notes`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import duckdb

from leadscore.errors import EventError, InputError
from leadscore.events import event_from_row, event_to_row, nested_columns
from leadscore.ingest.bulk import NotBulk, ingest_bulk
from leadscore.ingest.history import mark_history
from leadscore.io import read_events, read_leads
from leadscore.io.segment import JSON_SUFFIXES, Rejected, messages
from leadscore.timeutil import iso, now_us

if TYPE_CHECKING:
    from leadscore.ingest.transaction import IngestResult
    from leadscore.service import Service

MAX_ERRORS_KEPT = 1000
MAX_NOTES_KEPT = 10
MESSAGE_BATCH = 500          # messages per transaction, message by message
BULK_BATCH = 100_000         # per transaction in bulk (measured: benchmarks/RESULTS.md)


@dataclass
class ImportResult:
    """What an import did: messages accepted, duplicates (already stored), rejected rows."""

    source: str
    kind: str
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)   # {row, field, message}
    handoffs: int = 0
    by_message: int = 0          # messages imported message by message (see `notes`)
    notes: list[str] = field(default_factory=list)   # why a batch was not imported in bulk

    def reject(self, row: int | None, field_name: str | None, message: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append({"row": row, "field": field_name, "message": message})


def content_id(prefix: str, row: Mapping[str, Any]) -> str:
    text = json.dumps(row, sort_keys=True, separators=(",", ":"), default=str)
    return f"{prefix}:" + hashlib.sha256(text.encode()).hexdigest()[:40]


def event_message(row: Mapping[str, Any]) -> dict[str, Any]:
    """A canonical events row (lead_id, ts, type, event, path, properties.*, context.*) as a
    Segment message."""
    properties, context = nested_columns(row)
    kind = row["type"]
    message: dict[str, Any] = {"type": kind, "userId": row["lead_id"],
                               "timestamp": iso(int(row["ts"]))}
    if kind == "track":
        message["event"] = row["event"]
    elif row.get("event") is not None:
        message["name"] = row["event"]
    if kind == "page" and row.get("path"):
        properties.setdefault("path", row["path"])
    message["properties"] = properties
    if context:
        message["context"] = context
    message["messageId"] = content_id("import", message)
    return message


def lead_messages(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A canonical leads row (lead_id, traits.*, account.*) as identify (and group) messages."""
    traits = {k[len("traits."):]: v for k, v in row.items()
              if k.startswith("traits.") and v is not None}
    account = {k[len("account."):]: v for k, v in row.items()
               if k.startswith("account.") and v is not None}
    lead_id = row["lead_id"]
    identify = {"type": "identify", "userId": lead_id, "traits": traits}
    identify["messageId"] = content_id("import", identify)
    out = [identify]
    if account:
        group_id = next((str(account[k]) for k in ("id", "name", "domain") if account.get(k)),
                        f"account:{lead_id}")
        group = {"type": "group", "userId": lead_id, "groupId": group_id,
                 "traits": {k: v for k, v in account.items() if k != "id"}}
        group["messageId"] = content_id("import", group)
        out.append(group)
    return out


def import_source(service: Service, source: Any, *,
                  kind: Literal["auto", "events", "leads"] = "auto",
                  progress: Callable[[int, int], None] | None = None,
                  batch_size: int | None = None, history: bool = True,
                  bulk: bool = True) -> ImportResult:
    """Import a file or table into the service's store (see the module doc). `history`: its
    messages are marked as history (`programs.entry.mark_history`): they score, and enrol
    no one in a program. `bulk=False`: every message through `Service.ingest` (the
    reference the bulk path is tested against). `batch_size`: messages per transaction."""
    ingest = partial(_ingest_bulk if bulk else _ingest, history=history)
    batch_size = batch_size or (BULK_BATCH if bulk else MESSAGE_BATCH)
    if isinstance(source, str | Path) and Path(source).suffix.lower() in JSON_SUFFIXES \
            and Path(source).is_file():
        return _import_json(service, Path(source), kind, progress, batch_size, ingest)
    return _import_table(service, source, kind, progress, batch_size, ingest)


Item = tuple[int, dict[str, Any] | EventError]


def _messages(result: ImportResult, items: list[Item], history: bool
              ) -> list[tuple[int, dict[str, Any]]]:
    """The messages of `items` (marked as history where asked); the rows that made none
    rejected."""
    batch: list[tuple[int, dict[str, Any]]] = []
    for number, message in items:
        if isinstance(message, EventError):
            result.reject(number, message.field, str(message).split(": ", 1)[-1])
        else:
            batch.append((number, mark_history(message) if history else message))
    return batch


def _ingest(service: Service, result: ImportResult, items: list[Item], *,
            history: bool) -> None:
    batch = _messages(result, items, history)
    if batch:
        _record(result, batch, service.ingest([message for _, message in batch]))
        result.by_message += len(batch)


def _ingest_bulk(service: Service, result: ImportResult, items: list[Item], *,
                 history: bool) -> None:
    batch = _messages(result, items, history)
    if not batch:
        return
    messages = [message for _, message in batch]
    try:
        outcome = ingest_bulk(service.db, service.active_models, messages, now_us(),
                              service.filters)
    except NotBulk as exc:
        if len(result.notes) < MAX_NOTES_KEPT:
            row = f"row {batch[exc.index][0]}: " if exc.index is not None else ""
            result.notes.append(f"rows {batch[0][0]}-{batch[-1][0]} imported message by "
                                f"message ({row}{exc})")
        outcome = service.ingest(messages)
        result.by_message += len(batch)
    _record(result, batch, outcome)


def _record(result: ImportResult, batch: list[tuple[int, dict[str, Any]]],
            outcome: IngestResult) -> None:
    result.accepted += outcome.accepted
    result.duplicates += outcome.duplicates
    result.handoffs += len(outcome.handoffs)
    for rejected in outcome.rejected:
        reason = (rejected.message or "").split(": ", 1)[-1]
        result.reject(batch[rejected.index][0], rejected.field, reason)


Ingest = Callable[["Service", ImportResult, list[Item]], None]


def _run(service: Service, result: ImportResult, items: Iterator[Item], total: int,
         progress: Callable[[int, int], None] | None, batch_size: int,
         ingest: Ingest) -> None:
    batch: list[Item] = []
    done = 0
    if progress is not None:
        progress(0, total)
    for item in items:
        batch.append(item)
        if len(batch) >= batch_size:
            ingest(service, result, batch)
            done += len(batch)
            batch = []
            if progress is not None:
                progress(min(done, total), total)
    if batch:
        ingest(service, result, batch)
        done += len(batch)
    if progress is not None:
        progress(max(done, total), max(done, total))


def _import_json(service: Service, path: Path, kind: str,
                 progress: Callable[[int, int], None] | None, batch_size: int,
                 ingest: Ingest) -> ImportResult:
    result = ImportResult(str(path), "segment")
    rejected = Rejected()
    with path.open(encoding="utf-8") as handle:
        total = sum(1 for line in handle if line.strip())

    def items() -> Iterator[Item]:
        for number, item in messages(path, rejected):
            if "lead_id" in item and "userId" not in item and "anonymousId" not in item:
                try:
                    made = _json_row_messages(item, kind)
                except EventError as exc:
                    yield number, exc
                    continue
                for message in made:
                    yield number, message
            else:
                yield number, dict(item)

    _run(service, result, items(), total, progress, batch_size, ingest)
    for row, field_name, reason in zip(rejected.rows, rejected.fields, rejected.reasons,
                                       strict=True):
        result.reject(row, field_name, reason)
    return result


def _json_row_messages(item: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    """A table row written as a JSON object (lead_id, timestamp, … or lead_id + traits)."""
    is_event = kind == "events" or (kind == "auto" and ("timestamp" in item or "ts" in item))
    if not is_event:
        return lead_messages({"lead_id": item["lead_id"], **{
            (k if k.startswith(("traits.", "account.")) else f"traits.{k}"): v
            for k, v in item.items() if k != "lead_id"}})
    row = event_to_row(event_from_row(item))
    row["ts"] = row.pop("timestamp")
    return [event_message(row)]


def _import_table(service: Service, source: Any, kind: str,
                  progress: Callable[[int, int], None] | None, batch_size: int,
                  ingest: Ingest) -> ImportResult:
    con = duckdb.connect()
    try:
        is_events = kind == "events"
        if kind == "leads":
            report = read_leads(source, con, name="leads")
        elif kind == "events":
            report = read_events(source, con, name="events")
        else:
            try:
                report, is_events = read_events(source, con, name="events"), True
            except InputError as exc:
                if "no column 'timestamp'" not in str(exc):
                    raise
                report = read_leads(source, con, name="leads")
        result = ImportResult(report.source, "events" if is_events else "leads")
        for row in report.rejected_rows.to_pylist():
            result.reject(row["row"], row["field"], row["reason"])
        name, order = ("events", "ts") if is_events else ("leads", "lead_id")
        cursor = con.execute(f'SELECT * FROM "{name}" ORDER BY "{order}"')
        column_names = [d[0] for d in cursor.description or ()]

        def items() -> Iterator[Item]:
            number = 0
            while True:
                chunk = cursor.fetchmany(batch_size)
                if not chunk:
                    return
                for values in chunk:
                    number += 1
                    row = dict(zip(column_names, values, strict=True))
                    made = [event_message(row)] if is_events else lead_messages(row)
                    for message in made:
                        yield number, message

        _run(service, result, items(), report.rows, progress, batch_size, ingest)
        return result
    finally:
        con.close()
