"""The outbox: handoffs written in the transaction that raised them, delivered later.

Several dispatchers may claim at once: a claim takes due items with `FOR UPDATE SKIP LOCKED`
on PostgreSQL (SQLite has one writer at a time) and leases them until `lease_until`, so no
other dispatcher takes them meanwhile; an item whose lease ran out (its dispatcher died) is due
again. Delivery is at least once; the id is stable, for the receiver to deduplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, or_, select, update

from leadscore.store.database import Database, NotFound
from leadscore.store.schema import outbox

STATUSES = ("pending", "delivered", "failed", "dead")     # dead: failed too often
LEASE_US = 60_000_000


@dataclass(frozen=True)
class OutboxItem:
    id: str
    kind: str
    lead_id: str
    model: str | None
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: int | None
    last_error: str | None
    created_at: int
    delivered_at: int | None


def _item(row: Any) -> OutboxItem:
    return OutboxItem(row.id, row.kind, row.lead_id, row.model, row.payload, row.status,
                      row.attempts, row.next_attempt_at, row.last_error, row.created_at,
                      row.delivered_at)


def add(db: Database, connection: Connection, item_id: str, kind: str, lead_id: str,
        model: str | None, payload: dict[str, Any], now: int) -> bool:
    """Write an item once (an id already there is kept); True if it is new."""
    result = connection.execute(db.insert(outbox).values(
        id=item_id, kind=kind, lead_id=lead_id, model=model, payload=payload,
        status="pending", attempts=0, next_attempt_at=now, lease_until=None, last_error=None,
        created_at=now, delivered_at=None).on_conflict_do_nothing())
    return bool(result.rowcount)


def listing(connection: Connection, status: str | None, limit: int, offset: int
            ) -> tuple[list[OutboxItem], int]:
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
    where = [outbox.c.status == status] if status else []
    total = connection.execute(select(func.count()).select_from(outbox).where(*where)).scalar()
    rows = connection.execute(select(outbox).where(*where).order_by(
        outbox.c.created_at.desc(), outbox.c.id).limit(limit).offset(offset))
    return [_item(r) for r in rows], int(total or 0)


def claim_due(connection: Connection, limit: int, now: int, lease_us: int = LEASE_US
              ) -> list[OutboxItem]:
    """Take up to `limit` due items and lease them; each claim counts as an attempt."""
    due = select(outbox.c.id).where(
        outbox.c.status.in_(("pending", "failed")), outbox.c.next_attempt_at.is_not(None),
        outbox.c.next_attempt_at <= now,
        or_(outbox.c.lease_until.is_(None), outbox.c.lease_until <= now),
    ).order_by(outbox.c.next_attempt_at, outbox.c.id).limit(limit).with_for_update(
        skip_locked=True)
    ids = list(connection.execute(due).scalars())
    if not ids:
        return []
    connection.execute(update(outbox).where(outbox.c.id.in_(ids)).values(
        lease_until=now + lease_us, attempts=outbox.c.attempts + 1))
    rows = connection.execute(select(outbox).where(outbox.c.id.in_(ids)).order_by(
        outbox.c.next_attempt_at, outbox.c.id))
    return [_item(r) for r in rows]


def _set(connection: Connection, item_id: str, **values: Any) -> None:
    result = connection.execute(update(outbox).where(outbox.c.id == item_id).values(**values))
    if not result.rowcount:
        raise NotFound(f"no handoff {item_id!r} in the outbox")


def mark_delivered(connection: Connection, item_id: str, now: int) -> None:
    _set(connection, item_id, status="delivered", delivered_at=now, lease_until=None,
         next_attempt_at=None, last_error=None)


def mark_failed(connection: Connection, item_id: str, error: str,
                next_attempt_at: int | None) -> None:
    """A failed attempt: retried at `next_attempt_at` (None: not again until `retry`)."""
    _set(connection, item_id, status="failed", last_error=error[:2000],
         next_attempt_at=next_attempt_at, lease_until=None)


def mark_dead(connection: Connection, item_id: str, error: str) -> None:
    """A dead letter: failed as often as allowed; no automatic attempt again (`retry`)."""
    _set(connection, item_id, status="dead", last_error=error[:2000], next_attempt_at=None,
         lease_until=None)


def retry(connection: Connection, item_id: str, now: int) -> None:
    """Make an item due now (a delivered one is sent again; a dead letter gets its attempts
    afresh)."""
    _set(connection, item_id, status="pending", next_attempt_at=now, lease_until=None,
         attempts=0)


def get(connection: Connection, item_id: str) -> OutboxItem:
    row = connection.execute(select(outbox).where(outbox.c.id == item_id)).first()
    if row is None:
        raise NotFound(f"no handoff {item_id!r} in the outbox")
    return _item(row)


__all__ = [
    "OutboxItem",
    "add",
    "claim_due",
    "get",
    "listing",
    "mark_dead",
    "mark_delivered",
    "mark_failed",
    "retry",
]
