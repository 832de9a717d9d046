"""Segment messages in JSON files (JSON lines, a JSON array, or a `{"batch": [...]}` body) as
Arrow tables: track/page/screen messages become event rows, identify messages lead rows.
An identify's reserved `traits.company` object is the lead's account, as the service reads
it: `account.id` (its id, else name, else domain) and `account.<x>` columns for its other keys.

The semantics of one message are those of `leadscore.events.event_from_message`; this module
only turns many of them into columns (nested objects flattened to dotted names).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from leadscore.errors import EventError
from leadscore.events import EVENT_TYPES, event_from_message, flatten
from leadscore.ingest.validate import company_account, content_id
from leadscore.timeutil import parse_timestamp, to_datetime

JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")


@dataclass
class Rejected:
    """Rows a reader could not use: 1-based row (line) number, field and reason."""

    rows: list[int] = field(default_factory=list)
    fields: list[str | None] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    values: list[str | None] = field(default_factory=list)

    def add(self, row: int, field_name: str | None, reason: str, value: object = None) -> None:
        self.rows.append(row)
        self.fields.append(field_name)
        self.reasons.append(reason)
        self.values.append(None if value is None else str(value)[:200])

    def __len__(self) -> int:
        return len(self.rows)


def messages(path: Path, rejected: Rejected) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """(line or item number, message) for every JSON object of the file; the rest is rejected."""
    with path.open(encoding="utf-8") as handle:
        head = handle.read(1)
        while head and head.isspace():
            head = handle.read(1)
        handle.seek(0)
        if head in ("[", "{") and path.suffix == ".json":
            try:
                document = json.load(handle)
            except json.JSONDecodeError:
                document = None  # fall back to JSON lines below
            else:
                items = document.get("batch", [document]) if isinstance(document, dict) \
                    else document
                for number, item in enumerate(items if isinstance(items, list) else [], 1):
                    if isinstance(item, Mapping):
                        yield number, item
                    else:
                        rejected.add(number, None, "not a JSON object", item)
                return
            handle.seek(0)
        yield from json_lines(enumerate(handle, 1), rejected)


def json_lines(lines: Iterable[tuple[int, str]], rejected: Rejected
               ) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """(line number, message) for every line holding a JSON object; blank lines are skipped,
    the rest rejected."""
    for number, line in lines:
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            rejected.add(number, None, f"not JSON: {exc.msg}", line.strip())
            continue
        if isinstance(item, Mapping):
            yield number, item
        else:
            rejected.add(number, None, "not a JSON object", line.strip())


def event_table(path: Path, *, strict: bool) -> tuple[pa.Table, Rejected, Counter[str]]:
    """The events of a Segment JSON file: lead_id, timestamp, type, event, path, properties.*,
    context.*; other message types (identify, group, alias) are counted, not rejected."""
    rejected, others = Rejected(), Counter[str]()
    rows: list[dict[str, Any]] = []
    for number, message in messages(path, rejected):
        kind = message.get("type")
        if kind in ("identify", "group", "alias"):
            others[str(kind)] += 1
            continue
        try:
            event = event_from_message(message, source=str(path), row=number)
        except EventError as exc:
            if strict:
                raise
            rejected.add(number, exc.field, str(exc).split(": ", 1)[-1],
                         message.get(exc.field or "") if exc.field else None)
            continue
        row: dict[str, Any] = {"lead_id": event.lead_id,
                               "timestamp": to_datetime(event.timestamp),
                               "type": event.type, "event": event.event, "path": event.path}
        row.update(flatten("properties.", event.properties))
        row.update(flatten("context.", event.context))
        rows.append(row)
    if strict and rejected:
        raise EventError(rejected.reasons[0], source=str(path), row=rejected.rows[0],
                         field=rejected.fields[0])
    fixed = {"lead_id": pa.string(), "timestamp": pa.timestamp("us", tz="UTC"),
             "type": pa.string(), "event": pa.string(), "path": pa.string()}
    return columns_table(rows, fixed), rejected, others


def lead_table(path: Path, *, strict: bool) -> tuple[pa.Table, Rejected, Counter[str]]:
    """The leads of a Segment JSON file from its identify messages; traits of later messages
    for the same lead override earlier ones."""
    rejected, others = Rejected(), Counter[str]()
    leads: dict[str, dict[str, Any]] = {}
    for number, message in messages(path, rejected):
        kind = message.get("type")
        if kind != "identify":
            others[str(kind)] += 1
            continue
        lead = message.get("userId") or message.get("anonymousId")
        if not isinstance(lead, str | int) or isinstance(lead, bool) or lead == "":
            if strict:
                raise EventError("the message has neither userId nor anonymousId",
                                 source=str(path), row=number, field="userId")
            rejected.add(number, "userId", "the message has neither userId nor anonymousId")
            continue
        traits = message.get("traits") or {}
        if not isinstance(traits, Mapping):
            if strict:
                raise EventError("traits must be an object", source=str(path), row=number,
                                 field="traits")
            rejected.add(number, "traits", "traits must be an object", traits)
            continue
        row = leads.setdefault(str(lead), {"lead_id": str(lead)})
        row.update(flatten("traits.", traits))
        company = company_account(traits)
        if company is not None:
            if row.get("account.id") != company[0]:     # another account: not its traits
                for key in [k for k in row if k.startswith("account.")]:
                    del row[key]
            row["account.id"] = company[0]
            row.update(flatten("account.", company[1]))
    return columns_table(list(leads.values()), {"lead_id": pa.string()}), rejected, others


def columns_table(rows: list[dict[str, Any]], fixed: dict[str, pa.DataType]) -> pa.Table:
    """Rows of mixed keys as one table: a column per key, typed by its values."""
    names = list(fixed)
    for row in rows:
        names.extend(key for key in row if key not in fixed and key not in names)
    names = list(dict.fromkeys(names))
    arrays = []
    for name in names:
        values = [row.get(name) for row in rows]
        arrays.append(pa.array(values, type=fixed[name]) if name in fixed
                      else _typed_array(values))
    return pa.table(dict(zip(names, arrays, strict=True)))


def _typed_array(values: list[Any]) -> pa.Array:
    return typed_array(values, kinds_of(values))


def kinds_of(values: Iterable[Any]) -> set[str]:
    """The kinds of a column's values: bool, int (64-bit), float, str, other."""
    return {_kind(v) for v in values if v is not None}


def typed_array(values: list[Any], kinds: set[str]) -> pa.Array:
    """One Arrow type for a property's values of `kinds` (theirs, or more where the column
    has other values elsewhere): bool, int64, float64, else text.

    A property holding numbers in some events and text in others becomes text (JSON for lists
    and objects): a column has one type."""
    if kinds == {"bool"}:
        return pa.array(values, type=pa.bool_())
    if kinds == {"int"}:
        return pa.array(values, type=pa.int64())
    if kinds and kinds <= {"int", "float"}:
        return pa.array([None if v is None else float(v) for v in values], type=pa.float64())
    return pa.array([None if v is None else (v if isinstance(v, str) else json.dumps(v))
                     for v in values], type=pa.string())


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -(2**63) <= value < 2**63 else "other"
    if isinstance(value, float):
        return "float"
    return "str" if isinstance(value, str) else "other"




# ----------------------------------------------------------------------------- messages

MESSAGE_KINDS = ("identify", "alias", "group", "track", "page", "screen")
# The fixed columns of the `messages` relation (the contract with `engine.sql.stream`), then
# the flattened `properties.*`, `context.*`, `traits.*` and `account.*` columns.
MESSAGE_COLUMNS: dict[str, pa.DataType] = {
    "message_id": pa.string(), "type": pa.string(), "user_id": pa.string(),
    "anonymous_id": pa.string(), "previous_id": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"), "event": pa.string(), "path": pa.string(),
    "account_id": pa.string(),
}


def message_table(path: Path, *, strict: bool) -> tuple[pa.Table, Rejected]:
    """The `messages` relation of a Segment JSON file: one row per message of any type
    (before dedupe), see `engine.sql.stream` for its columns; bad messages are rejected."""
    rejected = Rejected()
    rows = message_rows(messages(path, rejected), rejected, source=str(path), strict=strict)
    if strict and rejected:
        raise EventError(rejected.reasons[0], source=str(path), row=rejected.rows[0],
                         field=rejected.fields[0])
    return columns_table(rows, MESSAGE_COLUMNS), rejected


def message_rows(numbered: Iterable[tuple[int, Mapping[str, Any]]], rejected: Rejected, *,
                 source: str, strict: bool) -> list[dict[str, Any]]:
    """Rows of the `messages` relation for (number, message) pairs; a bad message is
    rejected (raised where `strict`)."""
    rows: list[dict[str, Any]] = []
    for number, message in numbered:
        try:
            rows.append(message_row(message, source=source, row=number))
        except EventError as exc:
            if strict:
                raise
            rejected.add(number, exc.field, str(exc).split(": ", 1)[-1],
                         message.get(exc.field or "") if exc.field else None)
    return rows


def message_row(message: Mapping[str, Any], *, source: str | None = None,
                row: int | None = None) -> dict[str, Any]:
    """One message as a row of the `messages` relation; raises EventError naming the field.

    The timestamp is `timestamp`, else `originalTimestamp`; an identify, alias or group
    message with neither has NULL (it holds at every as_of); an event message with neither
    falls back to `sentAt` / `receivedAt` (as before) and is rejected without any."""
    def fail(field_name: str, reason: str) -> EventError:
        return EventError(reason, source=source, row=row, field=field_name)

    kind = message.get("type")
    if kind not in MESSAGE_KINDS:
        raise fail("type", f"unknown message type {kind!r}; expected one of "
                   f"{', '.join(MESSAGE_KINDS)}")
    ids = {key: _message_id(message, key, fail)
           for key in ("messageId", "userId", "anonymousId", "previousId", "groupId")}
    if kind == "alias":
        if ids["userId"] is None:
            raise fail("userId", "an alias message needs userId")
        if ids["previousId"] is None:
            raise fail("previousId", "an alias message needs previousId")
    elif ids["userId"] is None and ids["anonymousId"] is None:
        raise fail("userId", "the message has neither userId nor anonymousId")
    keys = ("timestamp", "originalTimestamp") + (
        ("sentAt", "receivedAt") if kind in EVENT_TYPES else ())
    stamp_key = next((k for k in keys if message.get(k) is not None), None)
    stamp: int | None = None
    if stamp_key is not None:
        try:
            stamp = parse_timestamp(message[stamp_key])
        except (ValueError, OverflowError) as exc:
            raise fail(stamp_key, str(exc)) from None
    for key in ("properties", "context", "traits"):
        if message.get(key) is not None and not isinstance(message[key], Mapping):
            raise fail(key, f"{key} must be an object")
    out: dict[str, Any] = {
        "message_id": ids["messageId"] or content_id(message), "type": kind,
        "user_id": ids["userId"], "anonymous_id": ids["anonymousId"],
        "previous_id": ids["previousId"] if kind == "alias" else None,
        "timestamp": None if stamp is None else to_datetime(stamp)}
    if kind in EVENT_TYPES:
        if stamp is None:
            raise fail("timestamp", "the message has no timestamp")
        event = event_from_message({**message, "timestamp": stamp}, source=source, row=row)
        out.update(event=event.event, path=event.path)
        out.update(flatten("properties.", event.properties))
        out.update(flatten("context.", event.context))
        return out
    traits = message.get("traits") or {}
    account: tuple[str, Mapping[str, Any]] | None = None
    if kind == "identify":
        out.update(flatten("traits.", traits))
        account = company_account(traits)
    elif kind == "group":
        if ids["groupId"] is None:
            raise fail("groupId", "a group message needs groupId")
        account = (ids["groupId"], traits)
    if account is not None:
        values = {k: v for k, v in account[1].items() if k != "id"}   # `account.id` is its id
        out["account_id"] = account[0]
        out.update(flatten("account.", values))
    return out


def _message_id(message: Mapping[str, Any], key: str, fail: Any) -> str | None:
    """An id as text; blank is absent (as `ingest.validate` reads ids)."""
    value = message.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise fail(key, f"{key} must be a string (got {type(value).__name__})")
    text = str(value)
    return text if text.strip() else None
