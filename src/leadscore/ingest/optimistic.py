"""Optimistic scoring: a call's events of existing leads scored before the write lock.

While a call waits for the writer (`GroupCommit`'s `prepare`), its messages are read and
scored in a read transaction, beside the writer: for each lead whose every message in the call
is a plain event (track, page, screen of its own identity), that already has a state under
every active model and no account to score, the events are folded (filters judged) against
the state read, and what the flush would write is computed — log rows, states' JSON text,
scores rows (`ingest.plan.LeadPlan`). Under the lock the transaction writes those rows as
they are where the store still holds what was read (`Session.prefetch`, `plan.vet`,
`LeadPlan.holds`); any other lead takes the ordinary path in the same transaction.

Not planned (the ordinary path): new leads, identify/alias/group calls, leads without a saved
state under an active model (a replay), leads of an account where a model scores accounts,
and a lead whose events cross a threshold (a handoff is routed and written under the lock).
A planned lead's rows are saved as of its call's time, as a transaction of that call alone
would save them (the ordinary path saves a group's leads as of the group's latest call).
Where plans seldom stand — writers on the same few leads, each plan stale by the time its
transaction runs — the work is done twice; `plan.Outlook` then plans only now and then. The
service plans on SQLite only, whose single write lock is the serial part: on PostgreSQL
writers run side by side and planning measured as extra work only (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from leadscore.filters import Filters
from leadscore.ingest.apply import log_row
from leadscore.ingest.decoded import DecodedStates
from leadscore.ingest.plan import LeadPlan, Plans, key_of, plain
from leadscore.ingest.session import ActiveModel, Session
from leadscore.ingest.validate import Message
from leadscore.store import leads as lead_store
from leadscore.store.database import Database
from leadscore.store.scores import states_many

Active = Callable[[Connection], list[ActiveModel]]


def plan_call(db: Database, active: Active, decoded: DecodedStates, filters: Filters | None,
              messages: list[Message], now: int) -> Plans | None:
    """The plans of a call's messages at `now` (µs), read and scored outside the write lock
    (none where no lead could be planned), the saved states read decoded into `decoded` for
    the ordinary path; None, having read nothing, where the call has a message that may link
    or merge leads (no plan could stand) or no model is active."""
    if not messages or not all(plain(m) for m in messages):
        return None
    with db.read() as connection:
        models = active(connection)
        if not models:
            return None
        versions = {m.name: m.version for m in models}
        found = lead_store.find_many(connection, {key_of(m) for m in messages})
        stored = lead_store.stored(connection, (m.message_id for m in messages))
        mine: dict[str, list[Message]] = {}
        skipped: set[str] = set()
        ids: set[str] = set()
        for m in messages:
            lead = found.get(key_of(m))
            if lead is None:
                continue            # a new lead: created under the lock
            if m.message_id in stored or m.message_id in ids or renames(m, lead):
                skipped.add(lead)
            ids.add(m.message_id)
            mine.setdefault(lead, []).append(m)
        rows = lead_store.load_many(connection, set(mine) - skipped)
        saved = states_many(connection, set(mine), text=True)
        # Folded on states decoded here, not on those kept in `decoded`: those stay for the
        # ordinary path of a lead whose plan does not stand (decoded for it below).
        session = Session(db, connection, models, now, write=False, filters=filters)
        accounts = bool(session.accounts.models)
        plans: dict[str, LeadPlan] = {}
        for lead_id, row in sorted(rows.items()):
            states = saved.get(lead_id, {})
            if (accounts and row.account_id is not None) or any(
                    name not in states or states[name].model_version != version
                    for name, version in versions.items()):
                continue
            read = {name: (r.model_version, r.latest, r.state) for name, r in states.items()}
            session.install(lead_id, row, {name: r._replace(state=json.loads(r.state))
                                           for name, r in states.items()}, False)
            if session.replayed(lead_id):
                continue
            log = _fold(session, lead_id, mine[lead_id], now)
            if log is not None:
                plans[lead_id] = LeadPlan(lead_id, now, row, read, log,
                                          session.written(lead_id))
    # For the ordinary path (a plan that does not stand, a lead not planned): the states
    # decoded, as without plans.
    compiled = {name: (version, session.compiled(name)) for name, version in versions.items()}
    decoded.decode(((r.lead_id, r.model, r.model_version, r.state)
                    for states in saved.values() for r in states.values()), compiled)
    return Plans(versions, plans)


def renames(message: Message, lead_id: str) -> bool:
    """Whether the message's userId renames its lead (`ingest.apply._lead_of`)."""
    user = message.user_id
    return user is not None and user < lead_id and lead_id.partition("#")[0] != user


def _fold(session: Session, lead_id: str, messages: list[Message], now: int
          ) -> dict[str, dict[str, Any]] | None:
    """The lead's messages folded in as `ingest.apply` would; their log rows, or None where
    one raises a handoff."""
    log = {}
    for m in messages:
        assert m.event is not None
        filtered = session.verdict(lead_id, m.event)
        log[m.message_id] = log_row(m, now, filtered)
        if filtered is None and session.event(lead_id, m.event):
            return None
    return log
