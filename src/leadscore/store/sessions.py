"""The store's own secrets and the dashboard's sessions.

`store_settings` keeps values the service makes for itself, never written to `leadscore.toml`:
the random key that signs session cookies (so reading the config file is not enough to mint a
session). `dashboard_sessions` lists sessions by id, so that logging out ends one on every
worker and host, not just in the browser that had the cookie.
"""

from __future__ import annotations

import secrets

from sqlalchemy import Column, Connection, String, Table, Text, delete, select, update

from leadscore.store.database import Database
from leadscore.store.schema import Micros, metadata

store_settings = Table(
    "store_settings", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", Micros, nullable=False),
)

dashboard_sessions = Table(
    "dashboard_sessions", metadata,
    Column("id", String(64), primary_key=True),
    Column("created_at", Micros, nullable=False),
    Column("expires_at", Micros, nullable=False, index=True),
    Column("ended_at", Micros),
)

SESSION_TABLES = (store_settings, dashboard_sessions)
SESSION_KEY = "session_key"


def stored_secret(db: Database, name: str, now: int) -> str:
    """The secret `name`, made (random, 256 bits) and kept on first use; every worker and
    host on the store reads the same one."""
    with db.read() as connection:
        found = _read(connection, name)
    if found is not None:
        return found

    def work(connection: Connection) -> str:
        again = _read(connection, name)
        if again is not None:
            return again
        value = secrets.token_hex(32)
        connection.execute(store_settings.insert().values(key=name, value=value,
                                                          created_at=now))
        return value

    return db.write(work)     # a race on the key: retried, and then the winner's is read


def _read(connection: Connection, name: str) -> str | None:
    value = connection.execute(select(store_settings.c.value).where(
        store_settings.c.key == name)).scalar()
    return None if value is None else str(value)


def start_session(db: Database, now: int, expires_at: int) -> str:
    """A new session's id (random); expired ones are dropped on the way."""
    session_id = secrets.token_urlsafe(24)

    def work(connection: Connection) -> None:
        connection.execute(delete(dashboard_sessions).where(
            dashboard_sessions.c.expires_at < now))
        connection.execute(dashboard_sessions.insert().values(
            id=session_id, created_at=now, expires_at=expires_at))

    db.write(work)
    return session_id


def session_alive(db: Database, session_id: str, now: int) -> bool:
    with db.read() as connection:
        row = connection.execute(select(dashboard_sessions.c.expires_at,
                                        dashboard_sessions.c.ended_at).where(
            dashboard_sessions.c.id == session_id)).first()
    return row is not None and row.ended_at is None and row.expires_at > now


def end_session(db: Database, session_id: str, now: int) -> bool:
    """End a session (logout); whether it was alive."""
    def work(connection: Connection) -> bool:
        return bool(connection.execute(update(dashboard_sessions).where(
            dashboard_sessions.c.id == session_id, dashboard_sessions.c.ended_at.is_(None)
        ).values(ended_at=now)).rowcount)

    return db.write(work)
