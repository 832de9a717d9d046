"""Segment messages in: each validated, the valid ones of concurrent `Service.ingest` calls
stored and scored together, a group of calls per transaction (`store.group_commit`), each call
with the outcome of each of its messages."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from sqlalchemy import Connection

from leadscore.errors import EventError
from leadscore.filters import Filters
from leadscore.ingest.apply import apply
from leadscore.ingest.decoded import DecodedStates
from leadscore.ingest.optimistic import plan_call
from leadscore.ingest.plan import LeadPlan, Outlook, Plans
from leadscore.ingest.replay import Replayed, replay
from leadscore.ingest.session import ActiveModel, Session
from leadscore.ingest.validate import Message, validate
from leadscore.model.compiled import compile_model
from leadscore.store.database import Database
from leadscore.store.group_commit import GroupCommit, Pending
from leadscore.store.leads import ANONYMOUS, USER, find_many
from leadscore.store.scores import forget_states, states_many


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


log = logging.getLogger("leadscore.ingest")

# A call's outcomes, the ids of the handoffs its transaction wrote to the outbox, and the
# leads its merges left to replay after the commit (each with the models it was an MQL under).
Written = tuple[list[MessageResult], list[str], dict[str, set[str]]]
Replay = Callable[[dict[str, set[str]], int], list[str]]
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


def ingest_messages(writes: Messages, messages: Sequence[Any], now: int,
                    replay: Replay | None = None) -> IngestResult:
    """Validate the messages at `now` (µs); write the valid ones through `writes` (a rejected
    message costs nothing to the others) and return once their transaction is committed,
    and the leads their merges left to replay are scored (`replay`, outside that
    transaction)."""
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
        done, handoffs, replays = writes.write(valid, now)
        for result in done:
            results[result.index] = result
        if replays and replay is not None:
            handoffs = [*handoffs, *replay(replays, now)]
    return IngestResult([r for r in results if r is not None], handoffs)


def apply_group(db: Database, connection: Connection, models: Sequence[ActiveModel],
                group: list[Pending[Message, Written]], filters: Filters | None = None,
                decoded: DecodedStates | None = None) -> list[Written]:
    """Store and score the messages of `group` in one transaction: each call's messages
    at its own time, the scores saved as of the latest; `filters` judge each event (a
    filtered one is logged with its filter's name, not scored). A merge's replay of the merged
    history is left to each call that merged, after the commit (`replay_merged`).
    `decoded`: states kept decoded between transactions (`ingest.decoded`)."""
    latest = max(pending.now for pending in group)
    session = Session(db, connection, models, latest, filters=filters, decoded=decoded)
    session.defer_replays = True
    if decoded is not None:     # the plans worked out before the lock (`ingest.optimistic`)
        session.offered = offered(group, {m.name: m.version for m in models})
    session.prefetch([m for pending in group for m in pending.items])
    planned, stood = {}, {**session.accepted, **session.adopted}
    for lead_plan in stood.values():
        lead_plan.used += 1
        planned.update(dict.fromkeys(lead_plan.log, lead_plan))
    for pending in group:
        plans = pending.prepared
        if isinstance(plans, Plans) and plans.outlook is not None:
            plans.outlook.report(len(plans.leads), sum(
                stood.get(lead) is plan for lead, plan in plans.leads.items()))
    out = []
    for pending in group:
        session.now = pending.now
        done, before = [], len(session.handoffs)
        replaying = set(session.replays)
        for message in pending.items:
            plan = planned.get(message.message_id)
            if plan is not None and not session.seen(message.message_id):
                session.append(plan.log[message.message_id])
                lead_id: str | None = plan.lead_id
            else:
                lead_id = apply(session, message)
            done.append(MessageResult(
                message.index, "accepted" if lead_id is not None else "duplicate",
                message.message_id, lead_id))
        out.append((done, session.handoffs[before:], set(session.replays) - replaying))
    session.now = latest
    before = len(session.handoffs)
    session.flush()
    session.release()
    saved = session.handoffs[before:]        # account handoffs: of the group as a whole
    return [(done, [*handoffs, *saved], {lead: session.replays[lead] for lead in mine
                                         if lead in session.replays})
            for done, handoffs, mine in out]


def offered(group: list[Pending[Message, Written]], versions: dict[str, int]
            ) -> dict[str, LeadPlan]:
    """The plans of the group's calls worked out under the same model versions; of a lead
    two calls planned, the first's (the second was folded without its events: the lead's
    messages in later calls take the ordinary path from the first's plan)."""
    found: dict[str, LeadPlan] = {}
    for pending in group:
        plans = pending.prepared
        if isinstance(plans, Plans) and plans.versions == versions:
            for lead_id, plan in plans.leads.items():
                if not plan.spent:
                    found.setdefault(lead_id, plan)
    return found


def prepare_call(db: Database, active: Callable[[Connection], list[ActiveModel]],
                 decoded: DecodedStates, filters: Filters | None,
                 pending: Pending[Message, Written], outlook: Outlook | None = None) -> None:
    """`GroupCommit`'s prepare: a waiting call's leads scored outside the write lock where
    the optimistic path covers them (`ingest.optimistic`) and it pays lately (`outlook`;
    None: never), else their states decoded."""
    plans = None
    if outlook is not None and outlook.worth():
        plans = plan_call(db, active, decoded, filters, pending.items, pending.now)
    if plans is None:
        prepare_messages(db, active, decoded, pending.items)
    elif plans.leads:       # else: no plan, the states it read are decoded all the same
        plans.outlook = outlook
        pending.prepared = plans


def replay_merged(db: Database, active: Callable[[Connection], list[ActiveModel]],
                  wanted: dict[str, set[str]], now: int) -> list[str]:
    """Score merged leads from all their events: each replayed in a read transaction (on
    SQLite, beside the writer: other messages are not held behind a big lead's history),
    then adopted in a short write transaction that folds in what was logged meanwhile.
    Returns the ids of the handoffs written."""
    written: list[str] = []
    for lead_id, prior in sorted(wanted.items()):
        try:
            written += _replay_one(db, active, lead_id, prior, now)
        except Exception:
            # The messages are stored: the lead is scored from its history when next loaded
            # (no saved state), in that transaction.
            log.warning("merged lead %r: replay failed; it is replayed when next loaded",
                        lead_id, exc_info=True)
            db.write(partial(_forget, lead_id=lead_id))
    return written


def _forget(connection: Connection, lead_id: str) -> None:
    forget_states(connection, lead_id)


def _replay_one(db: Database, active: Callable[[Connection], list[ActiveModel]],
                lead_id: str, prior: set[str], now: int) -> list[str]:
    with db.read() as connection:
        models = active(connection)
        replayed = replay(connection, [m.model for m in models], lead_id) if models else None
    if replayed is None:
        return []

    def adopt(connection: Connection, replayed: Replayed = replayed) -> list[str]:
        session = Session(db, connection, active(connection), now)
        if session.models:
            session.adopt(replayed, prior)
            session.flush()
        return session.handoffs

    return db.write(adopt)


def prepare_messages(db: Database, active: Callable[[Connection], list[ActiveModel]],
                     decoded: DecodedStates, messages: Sequence[Message]) -> None:
    """Before the write transaction (no write lock): read the saved states of the leads the
    messages name and decode them into `decoded`, so that the transaction, finding the same
    text stored under its lock, uses them as they are (a lead written meanwhile is decoded
    there anew)."""
    keys = {(USER, m.user_id) if m.user_id is not None else (ANONYMOUS, str(m.anonymous_id))
            for m in messages}
    with db.read() as connection:
        models = active(connection)
        found = find_many(connection, keys) if models else {}
        saved = states_many(connection, set(found.values()), text=True) if found else {}
    if not saved:
        return
    compiled = {m.name: (m.version, compile_model(m.model)) for m in models}
    decoded.decode(((row.lead_id, row.model, row.model_version, row.state)
                    for rows in saved.values() for row in rows.values()), compiled)
