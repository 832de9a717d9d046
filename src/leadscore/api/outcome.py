"""What the service did with the messages of one request, in the API's terms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from leadscore.timeutil import now_us


@dataclass
class Outcome:
    accepted: int
    duplicates: int
    rejected: list[dict[str, Any]]


def ingest(service: Any, messages: list[dict[str, Any]], indexes: Sequence[int | None]
           ) -> Outcome:
    """Store `messages` in one transaction (committed on return); rejected ones carry the
    index they had in the request."""
    result = service.ingest(messages, received_at=now_us())
    rejected = []
    for item in getattr(result, "rejected", []):
        index = getattr(item, "index", None)
        rejected.append({"index": indexes[index] if index is not None else None,
                         "field": getattr(item, "field", None),
                         "message": getattr(item, "message", str(item))})
    return Outcome(int(getattr(result, "accepted", 0)), int(getattr(result, "duplicates", 0)),
                   rejected)
