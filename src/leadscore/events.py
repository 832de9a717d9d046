"""Events and leads as the engines see them (docs/model-format.md, "Events and leads")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from leadscore.errors import EventError
from leadscore.globs import strip_query
from leadscore.timeutil import parse_timestamp

EVENT_TYPES = ("track", "page", "screen")
# Columns of an events table that are not properties.
EVENT_COLUMNS = ("lead_id", "timestamp", "type", "event", "path")


@dataclass(frozen=True, slots=True)
class Event:
    """Something a lead did: `timestamp` in microseconds since the epoch, UTC."""

    lead_id: str
    timestamp: int
    type: str = "track"
    event: str | None = None
    path: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)

    def get(self, path: str) -> Any:
        """The value at a canonical path (`properties.x.y`, `context.x`, `event`, `path`)."""
        root, _, rest = path.partition(".")
        if not rest:
            return getattr(self, root, None) if root in ("event", "type", "path") else None
        node: Any = self.properties if root == "properties" else (
            self.context if root == "context" else None)
        for part in rest.split("."):
            if not isinstance(node, Mapping):
                return None
            node = node.get(part)
        return node


def page_path(properties: Mapping[str, Any], context: Mapping[str, Any]) -> str | None:
    """properties.path, else context.page.path, else the path of properties.url."""
    path = properties.get("path")
    if not isinstance(path, str) or not path:
        page = context.get("page")
        path = page.get("path") if isinstance(page, Mapping) else None
    if (not isinstance(path, str) or not path) and isinstance(properties.get("url"), str):
        path = urlsplit(properties["url"]).path or "/"
    return strip_query(path) if isinstance(path, str) and path else None


def event_from_message(message: Mapping[str, Any], *, source: str | None = None,
                       row: int | None = None) -> Event:
    """An Event from a Segment `track`, `page` or `screen` message."""
    kind = message.get("type")
    if kind not in EVENT_TYPES:
        raise EventError(f"not an event message type: {kind!r} (expected track, page or "
                         "screen)", source=source, row=row, field="type")
    lead = message.get("userId") or message.get("anonymousId")
    if not isinstance(lead, str | int) or isinstance(lead, bool) or lead == "":
        raise EventError("the message has neither userId nor anonymousId", source=source,
                         row=row, field="userId")
    stamp = message.get("timestamp") or message.get("sentAt") or message.get("receivedAt")
    if stamp is None:
        raise EventError("the message has no timestamp", source=source, row=row,
                         field="timestamp")
    try:
        timestamp = parse_timestamp(stamp)
    except ValueError as exc:
        raise EventError(str(exc), source=source, row=row, field="timestamp") from None
    properties = message.get("properties") or {}
    context = message.get("context") or {}
    if not isinstance(properties, Mapping):
        raise EventError("properties must be an object", source=source, row=row,
                         field="properties")
    if not isinstance(context, Mapping):
        raise EventError("context must be an object", source=source, row=row, field="context")
    name = message.get("event") if kind == "track" else message.get("name")
    if kind == "track" and not isinstance(name, str):
        raise EventError("a track message needs an event name", source=source, row=row,
                         field="event")
    path = page_path(properties, context) if kind == "page" else None
    return Event(str(lead), timestamp, kind, name if isinstance(name, str) else None, path,
                 properties, context)


def event_from_row(row: Mapping[str, Any], *, source: str | None = None,
                   index: int | None = None) -> Event:
    """An Event from one row of an events table (columns as in the format doc)."""
    lead = row.get("lead_id")
    if lead is None or lead == "":
        raise EventError("no lead_id", source=source, row=index, field="lead_id")
    try:
        timestamp = parse_timestamp(row.get("timestamp"))
    except ValueError as exc:
        raise EventError(str(exc), source=source, row=index, field="timestamp") from None
    path = row.get("path")
    kind = row.get("type") or ("page" if path else "track")
    properties: dict[str, Any] = {}
    context: dict[str, Any] = {}
    for key, value in row.items():
        if key in EVENT_COLUMNS or value is None:
            continue
        if key.startswith("context."):
            put_dotted(context, key[len("context."):], value)
        else:
            put_dotted(properties, key.removeprefix("properties."), value)
    return Event(str(lead), timestamp, str(kind), row.get("event"),
                 strip_query(path) if isinstance(path, str) else None, properties, context)


def put_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.c` as target['a']['b']['c']; where a scalar already holds a parent, the
    dotted key itself is kept rather than lost."""
    *parents, last = dotted.split(".")
    for part in parents:
        child = target.setdefault(part, {})
        if not isinstance(child, dict):
            target[dotted] = value
            return
        target = child
    target[last] = value


def nested_columns(row: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `properties.<x>` and `context.<x>` columns of a canonical row as nested objects."""
    properties: dict[str, Any] = {}
    context: dict[str, Any] = {}
    for key, value in row.items():
        if value is None:
            continue
        if key.startswith("properties."):
            put_dotted(properties, key[len("properties."):], value)
        elif key.startswith("context."):
            put_dotted(context, key[len("context."):], value)
    return properties, context


def flatten(prefix: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Nested mappings as dotted keys: {'page': {'path': '/'}} → {'<prefix>page.path': '/'}."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out.update(flatten(f"{prefix}{key}.", value))
        else:
            out[f"{prefix}{key}"] = value
    return out


def event_to_row(event: Event) -> dict[str, Any]:
    """The table row of an event: the inverse of `event_from_row` for scalar properties."""
    row: dict[str, Any] = {"lead_id": event.lead_id, "timestamp": event.timestamp,
                           "type": event.type, "event": event.event, "path": event.path}
    row.update(flatten("properties.", event.properties))
    row.update(flatten("context.", event.context))
    return row


@dataclass(slots=True)
class Lead:
    """A lead's profile: traits and its account's traits."""

    lead_id: str
    traits: dict[str, Any] = field(default_factory=dict)
    account: dict[str, Any] = field(default_factory=dict)

    def get(self, path: str) -> Any:
        """The value at `traits.x` or `account.x`; a dotted rest walks nested objects."""
        root, _, rest = path.partition(".")
        node: Any = self.traits if root == "traits" else (
            self.account if root == "account" else None)
        if node is None or rest in node:
            return None if node is None else node[rest]
        for part in rest.split("."):
            if not isinstance(node, Mapping):
                return None
            node = node.get(part)
        return node


def lead_from_row(row: Mapping[str, Any]) -> Lead:
    traits: dict[str, Any] = {}
    account: dict[str, Any] = {}
    for key, value in row.items():
        if key == "lead_id" or value is None:
            continue
        if key.startswith("account."):
            account[key[len("account."):]] = value
        else:
            traits[key.removeprefix("traits.")] = value
    return Lead(str(row["lead_id"]), traits, account)
