"""Leads, identities and accounts: who a message is about, and merging two leads into one.

A known lead's id is the smallest userId some message was sent with (an alias's `previousId`
links, it does not name); an anonymous lead's, its anonymousId. `identities` maps every
userId and anonymousId to its lead. Identifying an anonymous lead merges it into the user's
lead; `alias` merges any two leads (the one with the smaller id survives). A merged-away lead
keeps its row with `merged_into` set, so its old id still resolves. Traits and account links
are what the log's messages say by the stream rules (`ingest.profile`); this module stores
them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, func, or_, select, update

from leadscore.events import Event, event_from_message
from leadscore.store import driver
from leadscore.store.database import Database
from leadscore.store.lifecycle import follow_merge, lifecycle_cursor
from leadscore.store.schema import accounts, events, identities, lead_state, leads, scores
from leadscore.timeutil import now_us

USER, ANONYMOUS = "user", "anonymous"
EVENT_TYPES = ("track", "page", "screen")


@dataclass
class LeadRow:
    id: str
    traits: dict[str, Any]
    account_id: str | None
    account: dict[str, Any]


def find(connection: Connection, kind: str, external_id: str) -> str | None:
    """The lead an identity belongs to."""
    return connection.execute(select(identities.c.lead_id).where(
        identities.c.kind == kind, identities.c.id == external_id)).scalar()


def find_many(connection: Connection, keys: Iterable[tuple[str, str]]
              ) -> dict[tuple[str, str], str]:
    """The leads of many identities ((kind, id) → lead id), in one statement; the unknown ones
    are left out."""
    wanted = set(keys)
    conditions, params = [], []
    for kind in (USER, ANONYMOUS):
        ids = [i for k, i in wanted if k == kind]
        if ids:
            where, values = driver.matching(connection, "id", ids)
            conditions.append(f"(kind = {driver.mark(connection)} AND {where})")
            params += [kind, *values]
    if not conditions:
        return {}
    rows = driver.select_rows(connection, "SELECT kind, id, lead_id FROM identities WHERE "
                              + " OR ".join(conditions), params)
    return {(kind, i): lead_id for kind, i, lead_id in rows}


def ensure_many(db: Database, connection: Connection, keys: Sequence[tuple[str, str]],
                now: int) -> tuple[dict[tuple[str, str], str], set[str]]:
    """The leads of many identities, the unknown ones created (a lead each, in the order
    given, as `ensure` one by one would), in a few statements whatever their number; and the
    ids of the leads created (they have no events and no state yet)."""
    found = find_many(connection, keys)
    missing = list(dict.fromkeys(k for k in keys if k not in found))
    if not missing:
        return found, set()
    taken = set(connection.execute(select(leads.c.id).where(
        leads.c.id.in_({i for _, i in missing}))).scalars())
    new_leads: list[dict[str, Any]] = []
    links: list[tuple[str, str, str]] = []
    for kind, external_id in missing:
        lead_id = external_id if external_id not in taken else _free_id(
            connection, external_id, taken)
        taken.add(lead_id)
        new_leads.append({"id": lead_id, "traits": {}, "account_id": None,
                          "merged_into": None, "created_at": now, "updated_at": now})
        links.append((kind, external_id, lead_id))
    # Only the rows this statement inserted come back: a lead another worker created
    # meanwhile under the same id is not ours to call new.
    created = set(connection.execute(db.insert(leads).on_conflict_do_nothing().returning(
        leads.c.id), new_leads).scalars())
    connection.execute(db.insert(identities).on_conflict_do_nothing(), [
        {"kind": kind, "id": i, "lead_id": lead_id, "created_at": now}
        for kind, i, lead_id in links])
    if db.dialect == "postgresql":
        # Another worker may have created some of these identities meanwhile: theirs stand.
        found.update(find_many(connection, missing))
    else:   # one writer at a time: ours are the ones stored
        found.update({(kind, i): lead_id for kind, i, lead_id in links})
    return found, created & {found[k] for k in missing}


def resolve(connection: Connection, lead_id: str) -> str | None:
    """The surviving lead for a lead id, a userId or an anonymousId; None if unknown."""
    row = connection.execute(select(leads.c.id, leads.c.merged_into).where(
        leads.c.id == lead_id)).first()
    if row is None:
        found = find(connection, USER, lead_id) or find(connection, ANONYMOUS, lead_id)
        if found is None:
            return None
        row = connection.execute(select(leads.c.id, leads.c.merged_into).where(
            leads.c.id == found)).first()
        if row is None:
            return None
    return row.merged_into or row.id


def ensure(db: Database, connection: Connection, kind: str, external_id: str,
           now: int) -> str:
    """The lead of an identity, created (with the identity) if it is new."""
    found = find(connection, kind, external_id)
    if found is not None:
        return found
    lead_id = _free_id(connection, external_id)
    connection.execute(db.insert(leads).values(
        id=lead_id, traits={}, account_id=None, merged_into=None, created_at=now,
        updated_at=now).on_conflict_do_nothing())
    link(db, connection, kind, external_id, lead_id, now)
    return find(connection, kind, external_id) or lead_id


def link(db: Database, connection: Connection, kind: str, external_id: str, lead_id: str,
         now: int) -> None:
    """Add an identity to a lead (nothing if the identity already has a lead)."""
    connection.execute(db.insert(identities).values(
        kind=kind, id=external_id, lead_id=lead_id, created_at=now).on_conflict_do_nothing())


def claim(db: Database, connection: Connection, kind: str, external_id: str, now: int) -> str:
    """The lead whose id is `external_id` gets the identity: the lead is created, or revived
    where it was merged away (its later merges then point at it again)."""
    row = connection.execute(select(leads.c.id).where(leads.c.id == external_id)).first()
    if row is None:
        connection.execute(db.insert(leads).values(
            id=external_id, traits={}, account_id=None, merged_into=None, created_at=now,
            updated_at=now))
    else:
        connection.execute(update(leads).where(leads.c.id == external_id).values(
            merged_into=None, updated_at=now))
    link(db, connection, kind, external_id, external_id, now)
    return external_id


def _free_id(connection: Connection, wanted: str, taken: set[str] | None = None) -> str:
    """`wanted`, or `wanted#2`, `#3`… where a lead already has that id (an anonymousId equal
    to someone's userId), or it is `taken` already."""
    candidate, n = wanted, 1
    while (taken is not None and candidate in taken) or connection.execute(
            select(leads.c.id).where(leads.c.id == candidate)).first():
        n += 1
        candidate = f"{wanted}#{n}"
    return candidate


def live(connection: Connection, lead_ids: Sequence[str]) -> list[str]:
    """Those of the leads that exist and were not merged away, in the order given."""
    found = set(connection.execute(select(leads.c.id).where(
        leads.c.id.in_(set(lead_ids)), leads.c.merged_into.is_(None))).scalars())
    return [i for i in lead_ids if i in found]


def is_known(connection: Connection, lead_id: str) -> bool:
    """Whether a userId belongs to the lead (else it is anonymous)."""
    return connection.execute(select(exists().where(
        identities.c.lead_id == lead_id, identities.c.kind == USER))).scalar() is True


def load(connection: Connection, lead_id: str, *, lock: bool = False) -> LeadRow | None:
    """The lead with its account's traits; `lock` holds its row until commit (PostgreSQL)."""
    query = select(leads.c.id, leads.c.traits, leads.c.account_id).where(leads.c.id == lead_id)
    if lock:
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        return None
    account: dict[str, Any] = {}
    if row.account_id is not None:
        account = connection.execute(select(accounts.c.traits).where(
            accounts.c.id == row.account_id)).scalar() or {}
    return LeadRow(row.id, dict(row.traits or {}), row.account_id, dict(account))


def load_many(connection: Connection, lead_ids: Iterable[str], *, lock: bool = False
              ) -> dict[str, LeadRow]:
    """Many leads with their accounts' traits, in two statements; `lock` holds their rows
    until commit (PostgreSQL; taken in id order, as every writer does, against deadlocks).
    A lead merged away meanwhile (by another worker) is left out."""
    wanted = sorted(set(lead_ids))
    if not wanted:
        return {}
    where, params = driver.matching(connection, "id", wanted)
    sql = f"SELECT id, traits, account_id, merged_into FROM leads WHERE {where} ORDER BY id"
    if lock and driver.postgres(connection):
        sql += " FOR UPDATE"
    rows = [row for row in driver.select_rows(connection, sql, params) if row[3] is None]
    account_ids = {row[2] for row in rows if row[2] is not None}
    traits: dict[str, Any] = {}
    if account_ids:
        where, params = driver.matching(connection, "id", account_ids)
        traits = {i: driver.loads(t) for i, t in driver.select_rows(
            connection, f"SELECT id, traits FROM accounts WHERE {where}", params)}
    return {lead_id: LeadRow(lead_id, dict(driver.loads(lead_traits) or {}), account_id,
                             dict(traits.get(account_id) or {}))
            for lead_id, lead_traits, account_id, _ in rows}


def not_null(traits: Mapping[str, Any]) -> dict[str, Any]:
    """The traits that say something: a null value does not erase what was set before, nor
    does an object whose every leaf is null (`{}`, `{"b": null}`: flattened, no column of it
    holds a value)."""
    return {key: value for key, value in traits.items() if says_something(value)}


def says_something(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(says_something(item) for item in value.values())
    return value is not None


def set_traits(connection: Connection, lead_id: str, traits: Mapping[str, Any],
               now: int) -> dict[str, Any]:
    """Merge traits into the lead's (Segment `identify` semantics; null values are skipped);
    return them all."""
    current = connection.execute(select(leads.c.traits).where(leads.c.id == lead_id)).scalar()
    merged = {**(current or {}), **not_null(traits)}
    if merged != current:
        connection.execute(update(leads).where(leads.c.id == lead_id).values(
            traits=merged, updated_at=now))
    return merged


def replace_traits(connection: Connection, lead_id: str, traits: Mapping[str, Any],
                   now: int) -> None:
    """The lead's traits are `traits` (recomputed from its identify messages)."""
    connection.execute(update(leads).where(leads.c.id == lead_id).values(
        traits=dict(traits), updated_at=now))


def set_account_traits(db: Database, connection: Connection, account_id: str,
                       traits: Mapping[str, Any], now: int) -> bool:
    """Create the account where new and merge `traits` into its traits (nulls skipped);
    return whether its traits changed."""
    current = connection.execute(select(accounts.c.traits).where(
        accounts.c.id == account_id)).first()
    if current is None:
        connection.execute(db.insert(accounts).values(
            id=account_id, traits=not_null(traits), created_at=now,
            updated_at=now).on_conflict_do_nothing())
        return bool(not_null(traits))
    merged = {**(current.traits or {}), **not_null(traits)}
    if merged == current.traits:
        return False
    connection.execute(update(accounts).where(accounts.c.id == account_id).values(
        traits=merged, updated_at=now))
    return True


def link_account(connection: Connection, lead_id: str, account_id: str | None, now: int
                 ) -> bool:
    """Link the lead to an account (None: to none); return whether its account changed."""
    before = connection.execute(select(leads.c.account_id).where(
        leads.c.id == lead_id)).scalar()
    if before == account_id:
        return False
    connection.execute(update(leads).where(leads.c.id == lead_id).values(
        account_id=account_id, updated_at=now))
    return True


def account_leads(connection: Connection, account_id: str) -> list[str]:
    return list(connection.execute(select(leads.c.id).where(
        leads.c.account_id == account_id, leads.c.merged_into.is_(None))).scalars())


def merge(connection: Connection, source: str, target: str, now: int) -> None:
    """Merge lead `source` into `target`: its identities, events and traits (the target's
    traits win here; `ingest.profile` recomputes them by the stream rules) become the
    target's; its state and scores go (rescore the target); its programs and segments follow
    (`follow_merge`)."""
    source_row = connection.execute(select(leads.c.traits, leads.c.account_id).where(
        leads.c.id == source)).first()
    target_row = connection.execute(select(leads.c.traits, leads.c.account_id).where(
        leads.c.id == target)).first()
    assert source_row is not None and target_row is not None
    connection.execute(update(leads).where(leads.c.id == target).values(
        traits={**(source_row.traits or {}), **(target_row.traits or {})},
        account_id=target_row.account_id or source_row.account_id, updated_at=now))
    connection.execute(update(identities).where(identities.c.lead_id == source).values(
        lead_id=target))
    connection.execute(update(leads).where(
        or_(leads.c.id == source, leads.c.merged_into == source)).values(
        merged_into=target, updated_at=now))
    connection.execute(delete(lead_state).where(lead_state.c.lead_id == source))
    connection.execute(delete(scores).where(scores.c.lead_id == source))
    follow_merge(connection, source, target, now)


def events_of(connection: Connection, lead_id: str) -> list[Event]:
    """The lead's track/page/screen events from the log, oldest first: those sent with one of
    its userIds, and those sent with only one of its anonymousIds."""
    return events_of_many(connection, [lead_id])[lead_id]


def events_of_many(connection: Connection, lead_ids: Iterable[str], *,
                   after_seq: int | None = None, upto_seq: int | None = None
                   ) -> dict[str, list[Event]]:
    """`events_of` for many leads in two statements (lead id → its events, oldest first);
    only those logged after `after_seq` / up to `upto_seq` where given."""
    wanted = set(lead_ids)
    found: dict[str, list[Event]] = {lead_id: [] for lead_id in wanted}
    if not wanted:
        return found
    owner = owned_identities(connection, wanted)
    users = [i for kind, i in owner if kind == USER]
    anonymous = [i for kind, i in owner if kind == ANONYMOUS]
    query = select(events.c.message, events.c.timestamp, events.c.user_id,
                   events.c.anonymous_id).where(
        events.c.type.in_(EVENT_TYPES), events.c.filtered.is_(None),
        or_(events.c.user_id.in_(users),
            and_(events.c.user_id.is_(None), events.c.anonymous_id.in_(anonymous)))
    ).order_by(events.c.timestamp, events.c.seq)
    if after_seq is not None:
        query = query.where(events.c.seq > after_seq)
    if upto_seq is not None:
        query = query.where(events.c.seq <= upto_seq)
    for message, timestamp, user_id, anonymous_id in connection.execute(query):
        lead_id = owner[(USER, user_id) if user_id is not None else (ANONYMOUS, anonymous_id)]
        found[lead_id].append(stored_event(message, timestamp, lead_id))
    return found


def owned_identities(connection: Connection, lead_ids: Iterable[str]
                     ) -> dict[tuple[str, str], str]:
    """The identities of the leads: (kind, id) → lead id."""
    return {(kind, i): lead_id for kind, i, lead_id in connection.execute(select(
        identities.c.kind, identities.c.id, identities.c.lead_id).where(
        identities.c.lead_id.in_(set(lead_ids))))}


def count_events(connection: Connection, lead_id: str) -> int:
    """How many track/page/screen events of the lead the log holds."""
    owner = owned_identities(connection, [lead_id])
    users = [i for kind, i in owner if kind == USER]
    anonymous = [i for kind, i in owner if kind == ANONYMOUS]
    return int(connection.execute(select(func.count()).select_from(events).where(
        events.c.type.in_(EVENT_TYPES), events.c.filtered.is_(None),
        or_(events.c.user_id.in_(users),
            and_(events.c.user_id.is_(None), events.c.anonymous_id.in_(anonymous))))
    ).scalar() or 0)


def log_position(connection: Connection) -> int:
    """The seq of the last message in the log (0 when empty)."""
    return int(connection.execute(select(func.max(events.c.seq))).scalar() or 0)


def later_than(connection: Connection, lead_id: str, types: Sequence[str], timestamp: int,
               message_id: str) -> bool:
    """Whether the log holds a message of `types` of the lead (by its own identity) later
    than (timestamp, messageId): two statements through the driver, no message decoded."""
    mark = driver.mark(connection)
    owned = driver.select_rows(connection, f"SELECT kind, id FROM identities WHERE lead_id = "
                               f"{mark}", [lead_id])
    users = [i for kind, i in owned if kind == USER]
    anonymous = [i for kind, i in owned if kind == ANONYMOUS]
    who, params = [], []
    if users:
        where, values = driver.matching(connection, "user_id", users)
        who.append(where)
        params += values
    if anonymous:
        where, values = driver.matching(connection, "anonymous_id", anonymous)
        who.append(f"(user_id IS NULL AND {where})")
        params += values
    if not who:
        return False
    kinds, values = driver.matching(connection, "type", list(types))
    rows = driver.select_rows(
        connection, f"SELECT timestamp, message_id FROM events WHERE {kinds} AND timestamp >= "
        f"{mark} AND ({' OR '.join(who)})", [*values, timestamp, *params])
    return any((t, m) > (timestamp, message_id) for t, m in rows)


def own_messages(connection: Connection, lead_id: str, types: Sequence[str],
                 since: int | None = None) -> list[tuple[int, str, str, dict[str, Any]]]:
    """The lead's messages of `types` in the log — those whose own identity (userId, else
    anonymousId) is one of the lead's — as (timestamp, messageId, type, message), in order of
    (timestamp, messageId); `since`: only those at or after that time."""
    owned = connection.execute(select(identities.c.kind, identities.c.id).where(
        identities.c.lead_id == lead_id)).all()
    users = [i for kind, i in owned if kind == USER]
    anonymous = [i for kind, i in owned if kind == ANONYMOUS]
    query = select(events.c.timestamp, events.c.message_id, events.c.type,
                   events.c.message).where(
        events.c.type.in_(types),
        or_(events.c.user_id.in_(users),
            and_(events.c.user_id.is_(None), events.c.anonymous_id.in_(anonymous))))
    if since is not None:
        query = query.where(events.c.timestamp >= since)
    # Sorted here, not in SQL: a PostgreSQL collation need not order text by code point.
    return sorted((t, m, kind, driver.loads(message))
                  for t, m, kind, message in connection.execute(query))


def stored(connection: Connection, message_ids: Iterable[str]) -> set[str]:
    """Which of these messageIds the log holds already, in one statement."""
    wanted = set(message_ids)
    if not wanted:
        return set()
    where, params = driver.matching(connection, "message_id", wanted)
    return {row[0] for row in driver.select_rows(
        connection, f"SELECT message_id FROM events WHERE {where}", params)}


LOG_COLUMNS = ("message_id", "type", "user_id", "anonymous_id", "event", "path", "timestamp",
               "received_at", "filtered", "message")


def append(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Add messages to the log in one statement (a row's `message`: the message, or its
    JSON text encoded already; `filtered`, where given: the filter that keeps it out of
    scoring). A messageId stored already (by another worker since `stored`
    said it was not) is a unique violation: the transaction is retried (see
    `Database.write`), and the retry counts it as a duplicate."""
    driver.insert_many(connection, events, LOG_COLUMNS, [
        (*(row.get(c) for c in LOG_COLUMNS[:-1]), message if isinstance(
            message := row["message"], str) else driver.dumps(message)) for row in rows])


# On PostgreSQL a transaction may commit its log rows after another that took later seqs; a
# gap in seq younger than this is waited for (a rolled-back transaction leaves one for good).
LOG_SETTLE_US = 30_000_000


def settled(rows: Sequence[Any], position: int, now: int) -> list[Any]:
    """The log rows (`seq`, `received_at`) after cursor `position` that a reader of the log
    can pass by: those up to the first gap in seq that may still fill (a transaction in
    flight), i.e. one whose next row was received less than LOG_SETTLE_US before `now`."""
    expected = position + 1
    for i, row in enumerate(rows):
        if row.seq != expected and row.received_at > now - LOG_SETTLE_US:
            return list(rows[:i])
        expected = row.seq + 1
    return list(rows)


@dataclass(frozen=True)
class LogChunk:
    """Rows of the log read after a reader's cursor (`read_after`)."""

    position: int           # the cursor's position they were read from
    rows: list[Any]         # those the reader can pass by (`settled` on PostgreSQL)
    full: bool              # as many as asked for were read: more may follow
    last: int               # the seq of the last row read, passable or not


def read_after(db: Database, connection: Connection, cursor: str, columns: Sequence[Any],
               limit: int) -> LogChunk:
    """Up to `limit` rows of the log (`seq`, `received_at` and `columns`) after the position
    of the reader named `cursor` (`lifecycle_cursor`), in seq order."""
    position = connection.execute(select(lifecycle_cursor.c.position).where(
        lifecycle_cursor.c.name == cursor)).scalar() or 0
    rows = connection.execute(select(events.c.seq, events.c.received_at, *columns).where(
        events.c.seq > position).order_by(events.c.seq).limit(limit)).all()
    last = rows[-1].seq if rows else position
    passable = settled(rows, position, now_us()) if db.dialect == "postgresql" else list(rows)
    return LogChunk(position, passable, len(rows) == limit, last)


def has_events(connection: Connection, lead_id: str) -> bool:
    ids = connection.execute(select(identities.c.kind, identities.c.id).where(
        identities.c.lead_id == lead_id)).all()
    users = [i for kind, i in ids if kind == USER]
    anonymous = [i for kind, i in ids if kind == ANONYMOUS]
    return connection.execute(select(exists().where(
        events.c.type.in_(EVENT_TYPES), events.c.filtered.is_(None),
        or_(events.c.user_id.in_(users),
            and_(events.c.user_id.is_(None), events.c.anonymous_id.in_(anonymous)))
    ))).scalar() is True


def refilter(connection: Connection, lead_id: str, verdict: str | None,
             lead_filters: Sequence[str]) -> int:
    """The lead's events flagged anew by a filter on the lead (`lead_filters`: their names):
    `verdict` on each not filtered yet, or, with None, the flag of such a filter lifted
    (flags of the filters on events stay as they were decided). Returns the rows changed."""
    owned = connection.execute(select(identities.c.kind, identities.c.id).where(
        identities.c.lead_id == lead_id)).all()
    users = [i for kind, i in owned if kind == USER]
    anonymous = [i for kind, i in owned if kind == ANONYMOUS]
    flagged = events.c.filtered.is_(None) if verdict is not None else \
        events.c.filtered.in_(list(lead_filters))
    result = connection.execute(update(events).where(
        events.c.type.in_(EVENT_TYPES), flagged,
        or_(events.c.user_id.in_(users),
            and_(events.c.user_id.is_(None), events.c.anonymous_id.in_(anonymous)))
    ).values(filtered=verdict))
    return int(result.rowcount or 0)


def stored_event(message: Mapping[str, Any], timestamp: int, lead_id: str) -> Event:
    """The Event of a stored message, for its (resolved) lead at its stored (clamped) time."""
    event = event_from_message({**message, "userId": lead_id, "timestamp": timestamp})
    return event
