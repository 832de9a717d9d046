"""What the service did with the messages of one request, in the API's terms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from leadscore.timeutil import now_us

if TYPE_CHECKING:
    from leadscore.service import Service


@dataclass
class Outcome:
    accepted: int
    duplicates: int
    rejected: list[dict[str, Any]]
    handoffs: int = 0


def ingest(service: Service, messages: list[dict[str, Any]], indexes: Sequence[int | None]
           ) -> Outcome:
    """Store `messages` in one transaction (committed on return); rejected ones carry the
    index they had in the request."""
    result = service.ingest(messages, received_at=now_us())
    rejected = []
    for item in result.rejected:
        text = item.message or "rejected"
        if text.startswith("message "):     # "message 3, field 'x': why": the index is ours
            text = text.split(": ", 1)[-1]
        rejected.append({"index": indexes[item.index], "field": item.field, "message": text})
    return Outcome(result.accepted, result.duplicates, rejected, len(result.handoffs))
