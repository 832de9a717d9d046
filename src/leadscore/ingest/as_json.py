"""The JSON of a score's reasons and of an event, as the API, the dashboard and handoffs show
them (leads' and accounts' alike)."""

from __future__ import annotations

from typing import Any

from leadscore.events import Event
from leadscore.timeutil import iso


def reason_json(reason: dict[str, Any]) -> dict[str, Any]:
    """A reason as `store.scores.reason_dict` gives it, its last event's time as ISO text."""
    last = reason.get("last_at")
    return {**reason, "last_at": iso(last) if last is not None else None}


def event_json(event: Event | None) -> dict[str, Any] | None:
    if event is None:
        return None
    return {"type": event.type, "event": event.event, "path": event.path,
            "timestamp": iso(event.timestamp), "properties": dict(event.properties)}
