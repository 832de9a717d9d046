"""Addresses that get no program e-mail, and addresses that confirmed they want it.

Kept by `addresses.address_hash` (SHA-256 of the normalised address), never the address
itself: an unsubscribe, an erased person ("forgotten"), an admin's block hold for whatever
lead id the address turns up under next. `email_optins` records double opt-in: when the
confirmation was asked for and when it was given. Created by migration step 7.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Column, Connection, String, Table, Text, delete, select

from leadscore.addresses import address_hash
from leadscore.store.database import Database
from leadscore.store.schema import Micros, metadata

email_suppressions = Table(
    "email_suppressions", metadata,
    Column("address_hash", String(64), primary_key=True),
    Column("reason", Text, nullable=False),     # unsubscribed | forgotten | admin | event
    Column("source", Text),                     # the e-mail, key or request it came from
    Column("at", Micros, nullable=False),
)

email_optins = Table(
    "email_optins", metadata,
    Column("address_hash", String(64), primary_key=True),
    Column("requested_at", Micros),             # the confirmation e-mail was queued
    Column("confirmed_at", Micros),             # the signed link (or a trusted event) said yes
    Column("source", Text),
)

SUPPRESSION_TABLES = (email_suppressions, email_optins)


def suppress(db: Database, connection: Connection, address: str, reason: str, now: int,
             source: str | None = None) -> bool:
    """No program e-mail to `address` from now on (the first reason is kept); True if new."""
    result = connection.execute(db.insert(email_suppressions).values(
        address_hash=address_hash(address), reason=reason, source=source,
        at=now).on_conflict_do_nothing())
    return bool(result.rowcount)


def unsuppress(connection: Connection, address: str) -> bool:
    """Lift the suppression of `address` (the admin API's re-subscribe); True if there was
    one."""
    return bool(connection.execute(delete(email_suppressions).where(
        email_suppressions.c.address_hash == address_hash(address))).rowcount)


def suppression(connection: Connection, address: str) -> dict[str, Any] | None:
    row = connection.execute(select(email_suppressions).where(
        email_suppressions.c.address_hash == address_hash(address))).first()
    return None if row is None else {"reason": row.reason, "source": row.source, "at": row.at}


def is_suppressed(connection: Connection, address: str) -> bool:
    return suppression(connection, address) is not None


def suppressed(connection: Connection, hashes: Iterable[str]) -> set[str]:
    """Which of these address hashes are suppressed, in one statement."""
    wanted = sorted(set(hashes))
    if not wanted:
        return set()
    return set(connection.execute(select(email_suppressions.c.address_hash).where(
        email_suppressions.c.address_hash.in_(wanted))).scalars())


def optin_state(connection: Connection, hashes: Iterable[str]) -> dict[str, tuple[
        int | None, int | None]]:
    """address hash → (requested_at, confirmed_at) for those that have a row."""
    wanted = sorted(set(hashes))
    if not wanted:
        return {}
    return {r.address_hash: (r.requested_at, r.confirmed_at) for r in connection.execute(
        select(email_optins).where(email_optins.c.address_hash.in_(wanted)))}


def confirm(db: Database, connection: Connection, address_sha: str, now: int,
            source: str | None = None) -> None:
    """The address confirmed it wants program e-mail (double opt-in)."""
    db.upsert(connection, email_optins, {"address_hash": address_sha, "confirmed_at": now,
                                         "source": source}, ("address_hash",))


def requested(db: Database, connection: Connection, address_sha: str, now: int) -> None:
    """A confirmation e-mail was queued for the address (asked once)."""
    connection.execute(db.insert(email_optins).values(
        address_hash=address_sha, requested_at=now, confirmed_at=None,
        source=None).on_conflict_do_nothing())
