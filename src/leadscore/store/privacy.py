"""A person's data: erase it (GDPR art. 17), export it (art. 15), and drop old events.

A person is a lead and every lead merged into it (alias, identify), with all their identities.
Their rows are found in every table of the store that has a `lead_id` column — read from the
database itself, so a table added later (by any module) is covered without a change here —
plus the event log (by the person's userIds and anonymousIds) and the leads themselves.
Erasing is one transaction, and leaves a suppression record of each e-mail address (hashed,
by `store.suppressions`) so that no program e-mails the person again.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Connection,
    column,
    delete,
    inspect,
    literal_column,
    or_,
    select,
    table,
)

from leadscore.store.database import Database, NotFound
from leadscore.store.schema import events, identities, leads, metadata

CHUNK = 5_000      # events deleted per transaction by the retention sweep


@dataclass
class Person:
    lead_id: str                        # the lead the person is known as now
    lead_ids: list[str]                 # it and every lead merged into it
    user_ids: list[str] = field(default_factory=list)
    anonymous_ids: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)


def person(connection: Connection, lead_id: str) -> Person:
    """The person of `lead_id` (which may be a lead merged away, or a userId); NotFound."""
    found = connection.execute(select(leads.c.id, leads.c.merged_into).where(
        leads.c.id == lead_id)).first()
    if found is None:
        found = connection.execute(select(leads.c.id, leads.c.merged_into).join(
            identities, identities.c.lead_id == leads.c.id).where(
            identities.c.id == lead_id)).first()
    if found is None:
        raise NotFound(f"no lead {lead_id!r}")
    current, seen = found.id, {found.id}
    target = found.merged_into
    while target is not None and target not in seen:     # the lead it lives on as
        seen.add(target)
        current = target
        target = connection.execute(select(leads.c.merged_into).where(
            leads.c.id == target)).scalar()
    ids, frontier = [current], [current]
    while frontier:                                         # and all merged into it
        frontier = [i for i in connection.execute(select(leads.c.id).where(
            leads.c.merged_into.in_(frontier))).scalars() if i not in ids]
        ids += frontier
    who = Person(current, ids)
    for kind, external in connection.execute(select(identities.c.kind, identities.c.id).where(
            identities.c.lead_id.in_(ids))):
        (who.user_ids if kind == "user" else who.anonymous_ids).append(external)
    for traits in connection.execute(select(leads.c.traits).where(leads.c.id.in_(ids))
                                     ).scalars():
        email = (traits or {}).get("email")
        if isinstance(email, str) and email.strip() and email not in who.emails:
            who.emails.append(email)
    return who


def person_tables(connection: Connection) -> list[str]:
    """Every table of the store with a `lead_id` column, by name."""
    inspector = inspect(connection)
    return sorted(name for name in inspector.get_table_names()
                  if any(c["name"] == "lead_id" for c in inspector.get_columns(name)))


def _events_of(who: Person) -> Any:
    return or_(events.c.user_id.in_(who.user_ids or [""]),
               events.c.anonymous_id.in_(who.anonymous_ids or [""]))


def export(connection: Connection, lead_id: str) -> dict[str, Any]:
    """Everything stored of the person: its leads, identities, events, and the rows of every
    table with a `lead_id` column, as JSON-ready values."""
    who = person(connection, lead_id)
    out: dict[str, Any] = {"lead_id": who.lead_id, "merged_leads": who.lead_ids[1:],
                           "user_ids": who.user_ids, "anonymous_ids": who.anonymous_ids,
                           "leads": _rows(connection, select(leads).where(
                               leads.c.id.in_(who.lead_ids))),
                           "events": _rows(connection, select(events).where(
                               _events_of(who)).order_by(events.c.seq))}
    tables: dict[str, Any] = {}
    for name in person_tables(connection):
        known = metadata.tables.get(name)      # typed: its JSON columns read as values
        source = known if known is not None else table(name, column("lead_id"))
        query = select(known) if known is not None else select(literal_column("*")
                                                               ).select_from(source)
        rows = _rows(connection, query.where(source.c.lead_id.in_(who.lead_ids)))
        if rows:
            tables[name] = rows
    out["tables"] = tables
    return out


def _rows(connection: Connection, query: Any) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row._mapping.items()}
            for row in connection.execute(query)]


def _plain(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes | memoryview) else value


@dataclass
class Erased:
    lead_id: str
    lead_ids: list[str]
    rows: dict[str, int]                 # table -> rows deleted
    suppressed: int                      # e-mail addresses suppressed


def erase(db: Database, lead_id: str, now: int) -> Erased:
    """Delete the person everywhere in one transaction, leaving a suppression record of each
    of its e-mail addresses (when the store has `store.suppressions`)."""
    def work(connection: Connection) -> Erased:
        who = person(connection, lead_id)
        for message in connection.execute(select(events.c.message).where(
                _events_of(who), events.c.type == "identify")).scalars():
            email = ((message or {}).get("traits") or {}).get("email")  # an earlier address
            if isinstance(email, str) and email.strip() and email not in who.emails:
                who.emails.append(email)
        rows: dict[str, int] = {}
        rows["events"] = connection.execute(delete(events).where(_events_of(who))).rowcount
        for name in person_tables(connection):
            reflected = table(name, column("lead_id"))
            rows[name] = connection.execute(delete(reflected).where(
                reflected.c.lead_id.in_(who.lead_ids))).rowcount
        rows["leads"] = connection.execute(delete(leads).where(
            leads.c.id.in_(who.lead_ids))).rowcount
        suppressed = _suppress(db, connection, who.emails, now)
        return Erased(who.lead_id, who.lead_ids, {k: v for k, v in rows.items() if v},
                      suppressed)

    return db.write(work)


def _suppress(db: Database, connection: Connection, emails: Sequence[str], now: int) -> int:
    """Record each address as never to be e-mailed, through `store.suppressions` (which
    hashes the normalised address); none where the store has no suppression list."""
    try:
        suppressions = importlib.import_module("leadscore.store.suppressions")
    except ImportError:
        return 0
    for email in emails:
        suppressions.suppress(db, connection, email, "forgotten", now)
    return len(emails)


def delete_events_before(db: Database, before: int, *, chunk: int = CHUNK) -> int:
    """Delete logged events with a timestamp before `before` (µs), `chunk` per transaction
    (a long sweep never holds the store's write lock for long); returns how many."""
    total = 0
    while True:
        def work(connection: Connection) -> int:
            seqs = select(events.c.seq).where(events.c.timestamp < before).order_by(
                events.c.seq).limit(chunk).scalar_subquery()
            return int(connection.execute(delete(events).where(events.c.seq.in_(seqs)))
                       .rowcount)

        deleted = db.write(work)
        total += deleted
        if deleted < chunk:
            return total
