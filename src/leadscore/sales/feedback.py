"""Sales' verdicts on a handed-off lead. Each is a Segment `track` event the engines read
(model.program_events.FEEDBACK_STAGES: the stage it sets), so the API, the dashboard's buttons
and a CRM workflow sending `Lead Accepted` to `/v1/track` are one and the same."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leadscore.model.program_events import FEEDBACK_STAGES

# The status the API takes → the event it raises.
STATUS_EVENTS = {
    "accepted": "Lead Accepted", "qualified": "Lead Qualified", "rejected": "Lead Rejected",
    "recycled": "Lead Recycled", "opportunity": "Opportunity Created",
    "won": "Opportunity Won", "lost": "Opportunity Lost",
}
EVENT_STATUSES = {event: status for status, event in STATUS_EVENTS.items()}
STATUSES = tuple(STATUS_EVENTS)
# Verdicts that answer a handoff (its SLA is met); the first one counts.
ANSWERS = ("Lead Accepted", "Lead Qualified", "Lead Rejected", "Lead Recycled",
           "Opportunity Created", "Opportunity Won", "Opportunity Lost")
REASON_REQUIRED = ("rejected",)
MAX_TEXT = 500
assert set(STATUS_EVENTS.values()) == set(FEEDBACK_STAGES)


class FeedbackError(ValueError):
    """Feedback that cannot be taken: names the field and what was expected."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Feedback:
    status: str
    reason: str | None
    by: str | None

    @property
    def event(self) -> str:
        return STATUS_EVENTS[self.status]


def parse_feedback(body: Any, reasons: tuple[str, ...]) -> Feedback:
    """A verdict from a request body {status, reason, by}, checked against the reason codes."""
    if not isinstance(body, Mapping):
        raise FeedbackError("(body)", "the body is a JSON object {status, reason, by}")
    unknown = sorted(set(body) - {"status", "reason", "by"})
    if unknown:
        raise FeedbackError(unknown[0], f"unknown field {unknown[0]!r}; expected status, "
                                        "reason, by")
    status = body.get("status")
    if status not in STATUS_EVENTS:
        raise FeedbackError("status", f"unknown status {status!r}; expected one of "
                                      f"{', '.join(STATUSES)}")
    reason, by = body.get("reason"), body.get("by")
    for name, value in (("reason", reason), ("by", by)):
        if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT):
            raise FeedbackError(name, f"{name} is a text of at most {MAX_TEXT} characters")
    if reason == "":
        reason = None
    if status in REASON_REQUIRED and reason is None:
        raise FeedbackError("reason", f"a {status} lead needs a reason: one of "
                                      f"{', '.join(reasons)}")
    if status in REASON_REQUIRED and reason not in reasons:
        raise FeedbackError("reason", f"unknown reason {reason!r}; the configured reasons "
                                      f"(routing.yaml feedback.reasons): {', '.join(reasons)}")
    return Feedback(str(status), reason, by)


def feedback_message(feedback: Feedback, identity: tuple[str, str], at: str,
                     model: str | None = None) -> dict[str, Any]:
    """The Segment `track` message of a verdict for the lead known by `identity` (kind, id)."""
    kind, external = identity
    properties: dict[str, Any] = {"status": feedback.status}
    if feedback.reason is not None:
        properties["reason"] = feedback.reason
    if feedback.by is not None:
        properties["by"] = feedback.by
    if model is not None:
        properties["model"] = model
    return {"type": "track", "event": feedback.event, "properties": properties,
            "timestamp": at, "messageId": f"feedback-{uuid.uuid4()}",
            ("userId" if kind == "user" else "anonymousId"): external}
