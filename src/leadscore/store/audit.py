"""The audit log: who did what, when — adjustments, feedback, model uploads, forgets, setting
changes. Append-only; written in the transaction of the change it records."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, Connection, Table, Text, func, select

from leadscore.store.schema import Micros, Serial, metadata

audit_log = Table(
    "audit_log", metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),
    Column("at", Micros, nullable=False, index=True),
    Column("actor", Text, nullable=False),          # admin | sales | a name given ("by")
    Column("action", Text, nullable=False, index=True),   # adjustment | feedback | model | …
    Column("target", Text),                         # a lead id, a model name, a setting
    Column("detail", JSON, nullable=False),
)

AUDIT_TABLES = (audit_log,)


def record(connection: Connection, at: int, actor: str, action: str, target: str | None,
           detail: dict[str, Any] | None = None) -> None:
    connection.execute(audit_log.insert().values(at=at, actor=actor, action=action,
                                                 target=target, detail=detail or {}))


def listing(connection: Connection, *, action: str | None = None, target: str | None = None,
            limit: int = 100, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Entries, newest first, and how many match."""
    where = []
    if action is not None:
        where.append(audit_log.c.action == action)
    if target is not None:
        where.append(audit_log.c.target == target)
    total = connection.execute(select(func.count()).select_from(audit_log).where(*where)
                               ).scalar()
    rows = connection.execute(select(audit_log).where(*where).order_by(
        audit_log.c.seq.desc()).limit(limit).offset(offset))
    return [dict(r._mapping) for r in rows], int(total or 0)
