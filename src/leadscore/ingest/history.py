"""Messages imported as history: they score, and never trigger a program (`programs.entry`).

`leadscore import` marks each message it sends through ingest with `context.leadscore.history`
(kept in the log with the message, so the enrolment that reads the log later sees it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

HISTORY_MARK = "leadscore"        # context.leadscore.history = true on imported messages
US_PER_HOUR = 3_600_000_000


def mark_history(message: dict[str, Any]) -> dict[str, Any]:
    """The message marked as history: it scores, and enrols no one."""
    context = message.get("context")
    context = dict(context) if isinstance(context, Mapping) else {}
    context[HISTORY_MARK] = {**(context.get(HISTORY_MARK) or {}), "history": True}
    return {**message, "context": context}


def is_news(message: Mapping[str, Any] | None, timestamp: int, received_at: int,
            max_age_hours: float | None) -> bool:
    """Whether an event may enrol: not marked as history, and not older than the limit
    when it arrived (None or 0: no limit)."""
    context = (message or {}).get("context")
    if isinstance(context, Mapping):
        mark = context.get(HISTORY_MARK)
        if isinstance(mark, Mapping) and mark.get("history") is True:
            return False
    return not max_age_hours or received_at - timestamp <= max_age_hours * US_PER_HOUR
