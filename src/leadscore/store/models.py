"""Model versions: every uploaded YAML is kept; one version per name is active.

A new active version is rescored from the event log; `rescore_state`, `rescore_done` and
`rescore_total` tell how far that has got.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select, update

from leadscore.store.database import NotFound
from leadscore.store.schema import leads, models
from leadscore.timeutil import iso


def active(connection: Connection) -> dict[str, tuple[int, str]]:
    """Active models: name → (version, YAML text)."""
    return {row.name: (row.version, row.yaml) for row in connection.execute(
        select(models.c.name, models.c.version, models.c.yaml).where(models.c.active.is_(True)))}


def active_versions(connection: Connection) -> dict[str, int]:
    return {row.name: row.version for row in connection.execute(
        select(models.c.name, models.c.version).where(models.c.active.is_(True)))}


def add(connection: Connection, name: str, text: str, now: int) -> int:
    """Store a new version, make it the active one (to be rescored); return its number."""
    version = (connection.execute(select(func.max(models.c.version)).where(
        models.c.name == name)).scalar() or 0) + 1
    connection.execute(update(models).where(models.c.name == name).values(active=False))
    connection.execute(models.insert().values(
        name=name, version=version, yaml=text, active=True, created_at=now,
        rescore_state="rescoring", rescore_done=0, rescore_total=live_leads(connection)))
    return version


def activate(connection: Connection, name: str, version: int) -> None:
    found = connection.execute(select(models.c.version).where(
        models.c.name == name, models.c.version == version)).first()
    if found is None:
        raise NotFound(f"model {name!r} has no version {version}")
    connection.execute(update(models).where(models.c.name == name).values(active=False))
    connection.execute(update(models).where(
        models.c.name == name, models.c.version == version).values(
        active=True, rescore_state="rescoring", rescore_done=0,
        rescore_total=live_leads(connection)))


def progress(connection: Connection, name: str, version: int, done: int, total: int,
             state: str) -> None:
    connection.execute(update(models).where(
        models.c.name == name, models.c.version == version).values(
        rescore_state=state, rescore_done=done, rescore_total=total))


def live_leads(connection: Connection) -> int:
    return int(connection.execute(select(func.count()).select_from(leads).where(
        leads.c.merged_into.is_(None))).scalar() or 0)


def versions(connection: Connection, name: str) -> list[dict[str, Any]]:
    rows = connection.execute(select(
        models.c.version, models.c.active, models.c.created_at, models.c.rescore_state
    ).where(models.c.name == name).order_by(models.c.version)).all()
    if not rows:
        raise NotFound(f"no model named {name!r}")
    return [{"version": r.version, "active": r.active, "created_at": iso(r.created_at),
             "state": r.rescore_state} for r in rows]


def status(connection: Connection, name: str) -> dict[str, Any]:
    row = connection.execute(select(models).where(
        models.c.name == name, models.c.active.is_(True))).first()
    if row is None:
        raise NotFound(f"no model named {name!r}")
    return {"name": name, "version": row.version, "state": row.rescore_state,
            "done": row.rescore_done, "total": row.rescore_total,
            "created_at": iso(row.created_at)}


def text_of(connection: Connection, name: str, version: int | None = None) -> str:
    query = select(models.c.yaml).where(models.c.name == name)
    query = query.where(models.c.active.is_(True) if version is None
                        else models.c.version == version)
    text = connection.execute(query).scalar()
    if text is None:
        raise NotFound(f"no model {name!r}" + (f" version {version}" if version else ""))
    return str(text)


def rescoring(connection: Connection) -> list[tuple[str, int]]:
    """Active versions whose rescore has not finished (a restart resumes them)."""
    return [(r.name, r.version) for r in connection.execute(select(
        models.c.name, models.c.version).where(models.c.active.is_(True),
                                               models.c.rescore_state == "rescoring"))]
