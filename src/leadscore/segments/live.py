"""Segment memberships kept current in the store.

`SegmentKeeper.refresh` re-evaluates the leads whose inputs changed: those with messages in the
log since its cursor (events and identify/group traits; scores follow them), and those whose
`within_days` window closes by now (`segment_recheck`). `sweep` re-evaluates every lead (scores
decay with time alone: run it now and then). Each change is a row in `segment_members` and an
entered/left row in `segment_history`; sizes are kept per hour in `segment_sizes`.

A lead entering because of an event enters at that event's time; otherwise at the refresh.
On PostgreSQL two transactions may commit log rows out of `seq` order: the cursor stops at a
young gap in `seq` (`store.leads.settled`) until it fills, as the programs' scheduler does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, func, select, update

from leadscore.events import Event
from leadscore.ingest.session import Session
from leadscore.segments.definition import Segment
from leadscore.segments.evaluate import LeadFacts, facts_from_scorer, holds, next_change
from leadscore.store import leads as lead_store
from leadscore.store.lifecycle import (
    lifecycle_cursor,
    segment_history,
    segment_members,
    segment_recheck,
    segment_sizes,
)
from leadscore.store.schema import events as events_table
from leadscore.store.schema import leads as leads_table
from leadscore.timeutil import now_us

if TYPE_CHECKING:
    from leadscore.service import Service

CURSOR = "segments"
BATCH = 200
LOG_CHUNK = 5000
HOUR_US = 3_600_000_000


@dataclass(frozen=True)
class Change:
    """A lead entered or left a segment at `at` (µs)."""

    segment: str
    lead_id: str
    kind: str          # entered | left
    at: int


def facts_in(service: Service, connection: Connection, lead_id: str, model: str | None,
             now: int, events: Sequence[Event] | None = None,
             session: Session | None = None) -> LeadFacts:
    """A lead's facts under a model from the store, in an open transaction (`session`: a
    read-only one of this transaction and `now`, with many leads loaded at once)."""
    if session is None:
        session = Session(service.db, connection, service.active_models(connection), now,
                          write=False)
    scorer = session.scorer(lead_id)
    if events is None:
        events = lead_store.events_of(connection, lead_id)
    if scorer is None:
        row = lead_store.load(connection, lead_id)
        traits = row.traits if row else {}
        account = row.account if row else {}
        return LeadFacts(lead_id, now, traits, account,
                         events=[e for e in events if e.timestamp <= now])
    return facts_from_scorer(scorer, lead_id, model, events, max(now, session.as_of(lead_id)))


def memberships(service: Service, connection: Connection, segments: Sequence[Segment],
                lead_id: str, now: int, events: Sequence[Event] | None = None,
                session: Session | None = None) -> tuple[set[str], int | None, int | None]:
    """The segments a lead is in now, when time alone may change that, its latest event
    (`events`, `session`: the lead's events and a read-only session of this transaction and
    `now`, read for many leads at once)."""
    if events is None:
        events = lead_store.events_of(connection, lead_id)
    cache: dict[str | None, LeadFacts] = {}
    inside: set[str] = set()
    recheck: int | None = None
    for segment in segments:
        facts = cache.get(segment.model)
        if facts is None:
            facts = cache[segment.model] = facts_in(service, connection, lead_id,
                                                    segment.model, now, events, session)
        facts.segments = inside
        if holds(segment.when, facts):
            inside.add(segment.name)
        when = next_change([segment], facts)
        if when is not None:
            recheck = when if recheck is None else min(recheck, when)
    latest = max((e.timestamp for e in events), default=None)
    return inside, recheck, latest


class SegmentKeeper:
    """Keeps `segment_members` current for a list of segments (in dependency order)."""

    def __init__(self, service: Service, segments: Sequence[Segment],
                 on_change: Callable[[Connection, list[Change]], None] | None = None):
        self.service, self.segments = service, list(segments)
        self.on_change = on_change

    def refresh(self, now: int | None = None) -> list[Change]:
        """Re-evaluate the leads changed since the last refresh or due for a recheck."""
        when = now_us() if now is None else now
        db = self.service.db
        with db.read() as connection:
            # not past a row a transaction may still commit (PostgreSQL)
            chunk = lead_store.read_after(db, connection, CURSOR, [
                events_table.c.user_id, events_table.c.anonymous_id], LOG_CHUNK)
            changed = _leads_of(connection, chunk.rows)
            due = set(connection.execute(select(segment_recheck.c.lead_id).where(
                segment_recheck.c.at <= when)).scalars())
        position = chunk.position
        last = chunk.rows[-1].seq if chunk.rows else position
        found = self._evaluate(sorted(changed | due), when, changed)

        def advance(connection: Connection) -> None:
            db.upsert(connection, lifecycle_cursor, {"name": CURSOR, "position": last},
                      ("name",))

        if last != position:
            db.write(advance)
        return found

    def sweep(self, now: int | None = None) -> list[Change]:
        """Re-evaluate every lead (scores change as time passes)."""
        when = now_us() if now is None else now
        with self.service.db.read() as connection:
            everyone = list(connection.execute(select(leads_table.c.id).where(
                leads_table.c.merged_into.is_(None)).order_by(leads_table.c.id)).scalars())
        return self._evaluate(everyone, when, set())

    def _evaluate(self, lead_ids: list[str], now: int, by_event: set[str]) -> list[Change]:
        changes: list[Change] = []
        if not self.segments:
            return changes
        for start in range(0, len(lead_ids), BATCH):
            chunk = lead_ids[start:start + BATCH]

            def work(connection: Connection, chunk: list[str] = chunk) -> list[Change]:
                found = self._update(connection, chunk, now, by_event)
                if found and self.on_change is not None:
                    self.on_change(connection, found)
                return found

            changes += self.service.db.write(work)
        return changes

    def _update(self, connection: Connection, lead_ids: list[str], now: int,
                by_event: set[str]) -> list[Change]:
        db = self.service.db
        names = [s.name for s in self.segments]
        current: dict[str, dict[str, int]] = {}
        for segment, lead_id, entered in connection.execute(select(
                segment_members.c.segment, segment_members.c.lead_id,
                segment_members.c.entered_at).where(segment_members.c.lead_id.in_(lead_ids),
                                                    segment_members.c.segment.in_(names))):
            current.setdefault(lead_id, {})[segment] = entered
        changes: list[Change] = []
        live = [i for i in lead_ids if lead_store.resolve(connection, i) == i]
        # The chunk's leads and events read at once, not lead by lead.
        session = Session(db, connection, self.service.active_models(connection), now,
                          write=False)
        session.load(live)
        history = lead_store.events_of_many(connection, live)
        for lead_id in live:
            inside, recheck, latest = memberships(self.service, connection, self.segments,
                                                  lead_id, now, history[lead_id], session)
            at = latest if lead_id in by_event and latest is not None and latest <= now \
                else now
            was = current.get(lead_id, {})
            for name in sorted(inside - set(was)):
                connection.execute(segment_members.insert().values(
                    segment=name, lead_id=lead_id, entered_at=at))
                connection.execute(segment_history.insert().values(
                    segment=name, lead_id=lead_id, entered_at=at, left_at=None))
                changes.append(Change(name, lead_id, "entered", at))
            for name in sorted(set(was) - inside):
                connection.execute(delete(segment_members).where(
                    segment_members.c.segment == name, segment_members.c.lead_id == lead_id))
                connection.execute(update(segment_history).where(
                    segment_history.c.segment == name, segment_history.c.lead_id == lead_id,
                    segment_history.c.left_at.is_(None)).values(left_at=now))
                changes.append(Change(name, lead_id, "left", now))
            if recheck is not None:
                db.upsert(connection, segment_recheck, {"lead_id": lead_id, "at": recheck},
                          ("lead_id",))
            else:
                connection.execute(delete(segment_recheck).where(
                    segment_recheck.c.lead_id == lead_id))
        touched = {c.segment for c in changes}
        hour = now - now % HOUR_US
        for name in sorted(touched):
            size = connection.execute(select(func.count()).select_from(segment_members).where(
                segment_members.c.segment == name)).scalar() or 0
            db.upsert(connection, segment_sizes, {"segment": name, "at": hour, "size": size},
                      ("segment", "at"))
        return changes


def identity_key(row: Any) -> tuple[str, str]:
    """The identity a log row was sent with: its userId, else its anonymousId."""
    return ("user", row.user_id) if row.user_id is not None else ("anonymous",
                                                                  row.anonymous_id)


def leads_by_identity(connection: Connection, rows: Iterable[Any]) -> dict[tuple[str, str], str]:
    """The (current) lead of each log row's identity, in two statements; unknown ones left
    out."""
    found = lead_store.find_many(connection, {identity_key(r) for r in rows})
    merged = dict(connection.execute(select(leads_table.c.id, leads_table.c.merged_into).where(
        leads_table.c.id.in_(set(found.values())), leads_table.c.merged_into.is_not(None))).all())
    return {key: merged.get(lead_id, lead_id) for key, lead_id in found.items()}


def _leads_of(connection: Connection, rows: Iterable[Any]) -> set[str]:
    """The (current) leads of log rows."""
    return set(leads_by_identity(connection, rows).values())


# ---- reading, for the API and the dashboard

def listing(connection: Connection, segments: Sequence[Segment]) -> list[dict[str, Any]]:
    sizes = {str(name): int(size) for name, size in connection.execute(select(
        segment_members.c.segment, func.count()).group_by(segment_members.c.segment))}
    return [{"name": s.name, "model": s.model, "description": s.description,
             "size": int(sizes.get(s.name, 0))} for s in segments]


def members(connection: Connection, segment: str, limit: int | None, offset: int
            ) -> tuple[list[dict[str, Any]], int]:
    where = segment_members.c.segment == segment
    total = connection.execute(select(func.count()).select_from(segment_members).where(
        where)).scalar() or 0
    query = select(segment_members.c.lead_id, segment_members.c.entered_at).where(where) \
        .order_by(segment_members.c.entered_at.desc(), segment_members.c.lead_id).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return [{"lead_id": r.lead_id, "entered_at": r.entered_at}
            for r in connection.execute(query)], int(total)


def history(connection: Connection, segment: str, lead_id: str | None = None,
            limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    query = select(segment_history).where(segment_history.c.segment == segment)
    if lead_id is not None:
        query = query.where(segment_history.c.lead_id == lead_id)
    query = query.order_by(segment_history.c.id.desc()).limit(limit).offset(offset)
    return [{"lead_id": r.lead_id, "entered_at": r.entered_at, "left_at": r.left_at}
            for r in connection.execute(query)]


def sizes(connection: Connection, segment: str) -> list[dict[str, Any]]:
    return [{"at": r.at, "size": r.size} for r in connection.execute(
        select(segment_sizes).where(segment_sizes.c.segment == segment)
        .order_by(segment_sizes.c.at))]
