"""Segment messages in: each validated, the valid ones of concurrent `Service.ingest` calls
stored and scored together, a group of calls per transaction (`store.group_commit`), each call
with the outcome of each of its messages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection

from leadscore.errors import EventError
from leadscore.ingest.apply import apply
from leadscore.ingest.session import ActiveModel, Session
from leadscore.ingest.validate import Message, validate
from leadscore.store.database import Database
from leadscore.store.group_commit import GroupCommit, Pending


@dataclass(frozen=True)
class MessageResult:
    """What became of one message: accepted, duplicate (its messageId was stored before) or
    rejected (`field` and `message` say why)."""

    index: int
    status: Literal["accepted", "duplicate", "rejected"]
    message_id: str | None = None
    lead_id: str | None = None
    field: str | None = None
    message: str | None = None


# A call's outcomes and the ids of the handoffs its transaction wrote to the outbox.
Written = tuple[list[MessageResult], list[str]]
Messages = GroupCommit[Message, Written]


@dataclass
class IngestResult:
    results: list[MessageResult]
    handoffs: list[str] = field(default_factory=list)   # ids written to the outbox

    @property
    def accepted(self) -> int:
        return sum(r.status == "accepted" for r in self.results)

    @property
    def duplicates(self) -> int:
        return sum(r.status == "duplicate" for r in self.results)

    @property
    def rejected(self) -> list[MessageResult]:
        return [r for r in self.results if r.status == "rejected"]


def ingest_messages(writes: Messages, messages: Sequence[Any], now: int) -> IngestResult:
    """Validate the messages at `now` (µs); write the valid ones through `writes` (a rejected
    message costs nothing to the others) and return once their transaction is committed."""
    results: list[MessageResult | None] = [None] * len(messages)
    valid: list[Message] = []
    for index, message in enumerate(messages):
        try:
            valid.append(validate(message, index, now))
        except EventError as exc:
            results[index] = MessageResult(index, "rejected", field=exc.field,
                                           message=str(exc))
    handoffs: list[str] = []
    if valid:
        done, handoffs = writes.write(valid, now)
        for result in done:
            results[result.index] = result
    return IngestResult([r for r in results if r is not None], handoffs)


def apply_group(db: Database, connection: Connection, models: Sequence[ActiveModel],
                group: list[Pending[Message, Written]]) -> list[Written]:
    """Store and score the messages of `group` in one transaction: each call's messages
    at its own time, the scores saved as of the latest."""
    latest = max(pending.now for pending in group)
    session = Session(db, connection, models, latest)
    session.prefetch([m for pending in group for m in pending.items])
    out = []
    for pending in group:
        session.now = pending.now
        done, before = [], len(session.handoffs)
        for message in pending.items:
            lead_id = apply(session, message)
            done.append(MessageResult(
                message.index, "accepted" if lead_id is not None else "duplicate",
                message.message_id, lead_id))
        out.append((done, session.handoffs[before:]))
    session.now = latest
    before = len(session.handoffs)
    session.flush()
    saved = session.handoffs[before:]        # account handoffs: of the group as a whole
    return [(done, [*handoffs, *saved]) for done, handoffs in out]
