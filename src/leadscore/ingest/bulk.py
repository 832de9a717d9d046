"""The bulk import path: a batch of history messages (`leadscore import`, the demo) stored and
scored at once, in one transaction, with the same result as ingesting them message by message.

Where the message path (`transaction.apply_group`) applies one message after another, here
each step is done for the whole batch: the messages validated (`validate`) and deduplicated;
their identities resolved and the new leads created (`leads.ensure_many`); the leads loaded
with their saved states before the log holds the batch; the log appended; traits and account
links set by the stream rules (`profile`: per key the latest non-null value of the lead's
identifies, the account of its latest account-naming message) and written with `store.bulk`;
the events folded by `Scorer.update_many` (`Session.fold_many`); states and scores saved in
one statement per table (`Session.flush`).

Handoffs are those of a replay (`Session.adopt`): a lead that is an MQL as of now, and was not
before the import, is handed off once, with the crossing its history made. Message by message,
a lead whose score goes up, down and up again as of now in one file is handed off at each
crossing; in bulk, once.

A batch that may merge leads — an `alias`, an `identify` linking an anonymousId that has a
lead or messages of its own, a userId that would rename its lead — is not for this path:
`NotBulk` says why, nothing is written, and the caller imports it message by message.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection

from leadscore.errors import EventError
from leadscore.events import Event
from leadscore.filters import Filters
from leadscore.ingest import profile
from leadscore.ingest.apply import log_row
from leadscore.ingest.session import ActiveModel, Session
from leadscore.ingest.transaction import IngestResult, MessageResult
from leadscore.ingest.validate import Message, validate
from leadscore.store import bulk
from leadscore.store import leads as lead_store
from leadscore.store.database import Database
from leadscore.store.leads import ANONYMOUS, USER

Key = tuple[str, str]


class NotBulk(Exception):
    """A batch the bulk path leaves to the message path: why, and the message (its index in
    the batch) that says so where there is one."""

    def __init__(self, reason: str, index: int | None = None):
        super().__init__(reason)
        self.index = index


def ingest_bulk(db: Database, active: Callable[[Connection], list[ActiveModel]],
                messages: Sequence[Any], now: int, filters: Filters | None = None
                ) -> IngestResult:
    """Validate the messages at `now` (µs) and store and score the valid ones in one
    transaction (see the module doc; `filters` judge each event as `apply` does: a filtered
    one is logged with its filter's name, not scored); raises NotBulk, having written
    nothing, for a batch that may merge leads."""
    results: list[MessageResult | None] = [None] * len(messages)
    valid: list[Message] = []
    for index, message in enumerate(messages):
        try:
            valid.append(validate(message, index, now))
        except EventError as exc:
            results[index] = MessageResult(index, "rejected", field=exc.field,
                                           message=str(exc))
    merging = next((m for m in valid if m.type == "alias"), None)
    if merging is not None:
        raise NotBulk("an alias merges leads", merging.index)
    handoffs: list[str] = []
    if valid:
        done, handoffs = db.write(lambda connection: _write(
            db, connection, Session(db, connection, active(connection), now, filters=filters),
            valid, now))
        for result in done:
            results[result.index] = result
    return IngestResult([r for r in results if r is not None], handoffs)


def own_key(message: Message) -> Key:
    """The identity a message is about: its userId, else its anonymousId."""
    if message.user_id is not None:
        return (USER, message.user_id)
    assert message.anonymous_id is not None
    return (ANONYMOUS, message.anonymous_id)


def _write(db: Database, connection: Connection, session: Session, messages: list[Message],
           now: int) -> tuple[list[MessageResult], list[str]]:
    stored = lead_store.stored(connection, (m.message_id for m in messages))
    fresh, done, met = [], [], set(stored)
    for m in messages:
        if m.message_id in met:
            done.append(MessageResult(m.index, "duplicate", m.message_id))
        else:
            met.add(m.message_id)
            fresh.append(m)
    keys = [own_key(m) for m in fresh]
    linked = _anonymous_links(connection, fresh, set(keys))
    found, created = lead_store.ensure_many(db, connection, keys, now)
    lead_of = [found[key] for key in keys]
    session.load(set(lead_of), created)             # before the log holds their events
    rows: list[dict[str, object]] = []
    events: dict[str, list[Event]] = {lead: [] for lead in lead_of}
    for m, lead_id in zip(fresh, lead_of, strict=True):
        # Filters (bots, internal traffic, link scanners): the verdict is kept in the log.
        filtered = session.verdict(lead_id, m.event) if m.event is not None else None
        rows.append(log_row(m, now, filtered))
        if m.event is not None and filtered is None:
            events[lead_id].append(m.event)
        done.append(MessageResult(m.index, "accepted", m.message_id, lead_id))
    lead_store.append(connection, rows)
    bulk.link_identities(db, connection, [(ANONYMOUS, anonymous_id, found[key])
                                          for anonymous_id, key in linked], now)
    profiles = _profiles(db, connection, session, fresh, lead_of, created, now)
    session.fold_many(events, lead_store.load_many(connection, profiles), created)
    for lead_id in sorted({lead for m, lead in zip(fresh, lead_of, strict=True)
                           if m.type == "identify"}):
        session.refilter(lead_id)       # one of ours now (or no more): its history follows
    session.flush()
    return done, session.handoffs


def _anonymous_links(connection: Connection, messages: list[Message], own: set[Key]
                     ) -> list[tuple[str, Key]]:
    """The anonymousIds identifies link to their userId's lead, where that merges nothing:
    an anonymousId with no lead yet and no message of its own here. Raises NotBulk for
    one that may merge, and for a userId that would rename its lead (`apply._lead_of`)."""
    links = [(m.anonymous_id, (USER, m.user_id)) for m in messages if m.type == "identify"
             and m.user_id is not None and m.anonymous_id is not None]
    wanted = {(ANONYMOUS, a) for a, _ in links} | {k for k in own if k[0] == USER}
    known = lead_store.find_many(connection, wanted)
    for anonymous_id, _ in links:
        if (ANONYMOUS, anonymous_id) in known or (ANONYMOUS, anonymous_id) in own:
            raise NotBulk(f"anonymousId {anonymous_id!r} has a lead or messages of its own: "
                          "identifying it merges leads")
    for (kind, user), lead_id in known.items():
        if kind == USER and user < lead_id and lead_id.partition("#")[0] != user:
            raise NotBulk(f"userId {user!r} renames its lead {lead_id!r}")
    return [(a, key) for a, key in links if a is not None]


def _profiles(db: Database, connection: Connection, session: Session, messages: list[Message],
              lead_of: list[str], created: set[str], now: int) -> set[str]:
    """Set the traits, accounts' traits and account links the batch's identify and group
    messages give, by the stream rules; return the leads whose profile changed (theirs, and
    the other leads of an account whose traits changed)."""
    identifies: dict[str, list[Message]] = defaultdict(list)
    naming: dict[str, list[Message]] = defaultdict(list)
    account_traits: dict[str, dict[str, Any]] = {}
    for m, lead_id in zip(messages, lead_of, strict=True):
        if m.type == "identify":
            identifies[lead_id].append(m)
        if m.group_id is not None:          # a group, or an identify naming its company
            naming[lead_id].append(m)
            merged = account_traits.setdefault(m.group_id, {})     # in arrival order
            merged.update(lead_store.not_null(m.group_traits))
    if not identifies and not naming:
        return set()
    order = _time_order
    traits: dict[str, dict[str, Any]] = {}
    for lead_id, found in identifies.items():
        if lead_id in created:          # the batch holds all its identifies
            merged = {}
            for m in sorted(found, key=order):
                merged.update(lead_store.not_null(m.traits))
            traits[lead_id] = merged
        else:
            traits[lead_id] = profile.lead_traits(connection, lead_id)
    bulk.set_traits(connection, traits, now)
    changed = bulk.merge_account_traits(db, connection, account_traits, now)
    session.accounts.changed |= changed
    current = lead_store.load_many(connection, naming)
    links = {}
    for lead_id, found in naming.items():
        account_id = (max(found, key=order).group_id if lead_id in created
                      else profile.lead_account(connection, lead_id))
        if account_id is not None and current[lead_id].account_id != account_id:
            links[lead_id] = account_id
    bulk.link_accounts(connection, links, now)
    members = set(bulk.account_leads(connection, changed))
    session.load(members)
    return set(traits) | set(links) | members


def _time_order(message: Message) -> tuple[int, str]:
    return (message.timestamp, message.message_id)
