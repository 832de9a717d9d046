"""The checks a message gets at the door, before the service reads it: it is a JSON object
and (in a batch) within Segment's 32 KB limit. Everything else about a message (ids, types,
timestamps) is the service's to check, so the API and `leadscore import` agree."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from leadscore.api.body import MESSAGE_LIMIT, size_text

TYPES = ("identify", "track", "page", "screen", "group", "alias")


def problem(index: int | None, field: str | None, message: str) -> dict[str, Any]:
    return {"index": index, "field": field, "message": message}


def check_message(message: Any, index: int | None, *, measure: bool = False
                  ) -> dict[str, Any] | None:
    """The problem of one message at the door, or None. `measure`: check its size too."""
    if not isinstance(message, Mapping):
        return problem(index, None, f"a message must be a JSON object, not "
                                    f"{json_type(message)}")
    if measure:
        size = len(json.dumps(message, ensure_ascii=False).encode("utf-8"))
        if size > MESSAGE_LIMIT:
            return problem(index, None, f"the message is over the {size_text(MESSAGE_LIMIT)} limit "
                                        f"of a message ({size_text(size)})")
    return None


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, Mapping) else type(value).__name__
