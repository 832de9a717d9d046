"""Sales' tables (issue #18): the routing file as installed, each handoff's assignment to an
owner (with its SLA), the round-robin position of each team, each owner's handoffs per day,
and manual adjustments of points.

A team's row is locked (`FOR UPDATE` on PostgreSQL; SQLite has one writer at a time) while one
of its members is picked, so concurrent handoffs never give two leads the same turn nor push an
owner past their daily capacity. An assignment's key is its handoff's id: a handoff is
assigned once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Double,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    func,
    select,
    update,
)

from leadscore.store.database import Database, NotFound
from leadscore.store.schema import Micros, metadata

sales_config = Table(
    "sales_config", metadata,
    Column("name", String(32), primary_key=True),     # routing
    Column("text", Text, nullable=False),
    Column("updated_at", Micros, nullable=False),
    Column("updated_by", Text),
)

assignments = Table(
    "sales_assignments", metadata,
    Column("handoff_id", Text, primary_key=True),      # an outbox id: may hold a lead id
    Column("lead_id", Text, nullable=False, index=True),
    Column("model", Text),
    Column("kind", String(16), nullable=False),        # lead | account
    Column("owner", Text, index=True),                 # None: no member of the team was free
    Column("team", Text),
    Column("rule", Integer),                           # the routing rule that matched
    Column("assigned_at", Micros, nullable=False),
    Column("due_at", Micros),                          # accept within; None: no SLA
    Column("on_breach", String(16)),                   # escalate | reassign | recycle
    Column("manager", Text),
    Column("status", String(16), nullable=False),      # open | answered | breached
    Column("answered_at", Micros),                     # sales' first verdict
    Column("breached_at", Micros),
    Index("ix_sales_assignments_status_due", "status", "due_at"),
)

team_state = Table(
    "sales_teams", metadata,
    Column("team", Text, primary_key=True),
    Column("turn", Integer, nullable=False),           # round-robin: the next member's index
    Column("updated_at", Micros, nullable=False),
)

capacity = Table(
    "sales_capacity", metadata,
    Column("owner", Text, primary_key=True),
    Column("day", String(10), primary_key=True),       # YYYY-MM-DD in the team's time zone
    Column("assigned", Integer, nullable=False),
)

adjustments = Table(
    "adjustments", metadata,
    Column("id", String(64), primary_key=True),
    Column("lead_id", Text, nullable=False, index=True),
    Column("model", Text),                             # None: every model
    Column("points", Double, nullable=False),
    Column("reason", Text, nullable=False),
    Column("by", Text),
    Column("created_at", Micros, nullable=False),
    Column("expires_at", Micros),
    Column("expired", Integer, nullable=False),        # 1 once its expiry event is written
    Column("detail", JSON),
)

SALES_TABLES = (sales_config, assignments, team_state, capacity, adjustments)


# ---- the routing file


def config_text(connection: Connection, name: str = "routing") -> str | None:
    return connection.execute(select(sales_config.c.text).where(
        sales_config.c.name == name)).scalar()


def put_config(db: Database, connection: Connection, text: str, now: int, by: str | None,
               name: str = "routing") -> bool:
    """Install a text; False when it is the one installed already."""
    if config_text(connection, name) == text:
        return False
    db.upsert(connection, sales_config, {"name": name, "text": text, "updated_at": now,
                                         "updated_by": by}, ("name",))
    return True


# ---- round robin and capacity


def lock_team(db: Database, connection: Connection, team: str, now: int) -> int:
    """The team's next turn, its row locked until the transaction ends."""
    connection.execute(db.insert(team_state).values(team=team, turn=0, updated_at=now)
                       .on_conflict_do_nothing())
    turn = connection.execute(select(team_state.c.turn).where(team_state.c.team == team)
                              .with_for_update()).scalar()
    return int(turn or 0)


def set_turn(connection: Connection, team: str, turn: int, now: int) -> None:
    connection.execute(update(team_state).where(team_state.c.team == team).values(
        turn=turn, updated_at=now))


def assigned_on(connection: Connection, owners: Sequence[str], day: str) -> dict[str, int]:
    return {o: int(n) for o, n in connection.execute(select(
        capacity.c.owner, capacity.c.assigned).where(capacity.c.owner.in_(list(owners)),
                                                     capacity.c.day == day))}


def count_one(db: Database, connection: Connection, owner: str, day: str) -> None:
    statement = db.insert(capacity).values(owner=owner, day=day, assigned=1)
    connection.execute(statement.on_conflict_do_update(
        index_elements=["owner", "day"], set_={"assigned": capacity.c.assigned + 1}))


# ---- assignments


def add_assignment(db: Database, connection: Connection, row: dict[str, Any]) -> bool:
    result = connection.execute(db.insert(assignments).values(**row).on_conflict_do_nothing())
    return bool(result.rowcount)


def owner_of(connection: Connection, lead_id: str) -> dict[str, Any] | None:
    """The lead's latest assignment."""
    row = connection.execute(select(assignments).where(assignments.c.lead_id == lead_id)
                             .order_by(assignments.c.assigned_at.desc()).limit(1)).first()
    return None if row is None else dict(row._mapping)


def owners_of(connection: Connection, lead_ids: Sequence[str]) -> dict[str, str | None]:
    """Each lead's current owner (its latest assignment's)."""
    if not lead_ids:
        return {}
    latest = select(assignments.c.lead_id, func.max(assignments.c.assigned_at).label("at")
                    ).where(assignments.c.lead_id.in_(list(lead_ids))).group_by(
        assignments.c.lead_id).subquery()
    rows = connection.execute(select(assignments.c.lead_id, assignments.c.owner).join(
        latest, and_(latest.c.lead_id == assignments.c.lead_id,
                     latest.c.at == assignments.c.assigned_at)))
    return {lead: owner for lead, owner in rows}


def current_owner_subquery() -> Any:
    """(lead_id, owner) of every lead's latest assignment, for joins in listings."""
    latest = select(assignments.c.lead_id, func.max(assignments.c.assigned_at).label("at")
                    ).group_by(assignments.c.lead_id).subquery()
    return select(assignments.c.lead_id, func.max(assignments.c.owner).label("owner")).join(
        latest, and_(latest.c.lead_id == assignments.c.lead_id,
                     latest.c.at == assignments.c.assigned_at)).group_by(
        assignments.c.lead_id).subquery()


def open_assignments(connection: Connection, lead_id: str) -> list[dict[str, Any]]:
    rows = connection.execute(select(assignments).where(
        assignments.c.lead_id == lead_id, assignments.c.status.in_(("open", "breached"))))
    return [dict(r._mapping) for r in rows]


def answer(connection: Connection, handoff_id: str, status: str, at: int) -> None:
    connection.execute(update(assignments).where(assignments.c.handoff_id == handoff_id)
                       .values(status=status, answered_at=at))


def due_breaches(connection: Connection, now: int, limit: int = 100) -> list[dict[str, Any]]:
    """Open assignments whose time to accept has passed, oldest first, locked."""
    rows = connection.execute(select(assignments).where(
        assignments.c.status == "open", assignments.c.due_at.is_not(None),
        assignments.c.due_at <= now).order_by(assignments.c.due_at).limit(limit)
        .with_for_update(skip_locked=True))
    return [dict(r._mapping) for r in rows]


def mark_breached(connection: Connection, handoff_id: str, now: int) -> None:
    connection.execute(update(assignments).where(assignments.c.handoff_id == handoff_id)
                       .values(status="breached", breached_at=now))


def all_assignments(connection: Connection, *, since: int | None = None
                    ) -> list[dict[str, Any]]:
    query = select(assignments).order_by(assignments.c.assigned_at)
    if since is not None:
        query = query.where(assignments.c.assigned_at >= since)
    return [dict(r._mapping) for r in connection.execute(query)]


# ---- adjustments


def add_adjustment(connection: Connection, row: dict[str, Any]) -> None:
    connection.execute(adjustments.insert().values(**row))


def adjustments_of(connection: Connection, lead_id: str | None = None) -> list[dict[str, Any]]:
    query = select(adjustments).order_by(adjustments.c.created_at)
    if lead_id is not None:
        query = query.where(adjustments.c.lead_id == lead_id)
    return [dict(r._mapping) for r in connection.execute(query)]


def due_expiries(connection: Connection, now: int, limit: int = 100) -> list[dict[str, Any]]:
    rows = connection.execute(select(adjustments).where(
        adjustments.c.expired == 0, adjustments.c.expires_at.is_not(None),
        adjustments.c.expires_at <= now).order_by(adjustments.c.expires_at).limit(limit)
        .with_for_update(skip_locked=True))
    return [dict(r._mapping) for r in rows]


def mark_expired(connection: Connection, adjustment_id: str) -> None:
    result = connection.execute(update(adjustments).where(adjustments.c.id == adjustment_id)
                                .values(expired=1))
    if not result.rowcount:
        raise NotFound(f"no adjustment {adjustment_id!r}")


# ---- feedback in the event log


def feedback_times(connection: Connection, lead_id: str, names: Sequence[str]
                   ) -> list[tuple[str, int]]:
    """(event name, time) of the lead's feedback events named `names`, oldest first."""
    from sqlalchemy import or_

    from leadscore.store.leads import ANONYMOUS, USER
    from leadscore.store.schema import events, identities

    ids = connection.execute(select(identities.c.kind, identities.c.id).where(
        identities.c.lead_id == lead_id)).all()
    users = [i for kind, i in ids if kind == USER]
    anonymous = [i for kind, i in ids if kind == ANONYMOUS]
    if not ids:
        return []
    rows = connection.execute(select(events.c.event, events.c.timestamp).where(
        events.c.event.in_(list(names)), events.c.type != "page",
        or_(events.c.user_id.in_(users), and_(events.c.user_id.is_(None),
                                              events.c.anonymous_id.in_(anonymous)))
    ).order_by(events.c.timestamp))
    return [(str(name), int(ts)) for name, ts in rows]


def segments_of(connection: Connection, lead_id: str) -> frozenset[str]:
    from leadscore.store.lifecycle import segment_members

    return frozenset(connection.execute(select(segment_members.c.segment).where(
        segment_members.c.lead_id == lead_id)).scalars())


def identity_of(connection: Connection, lead_id: str) -> tuple[str, str] | None:
    """An identity whose events count for the lead: a userId where it has one (the first),
    else an anonymousId."""
    from leadscore.store.schema import identities

    rows = connection.execute(select(identities.c.kind, identities.c.id).where(
        identities.c.lead_id == lead_id).order_by(identities.c.created_at, identities.c.id)
    ).all()
    users = [(str(k), str(i)) for k, i in rows if k == "user"]
    found = users or [(str(k), str(i)) for k, i in rows]
    return found[0] if found else None


def feedback_log(connection: Connection, names: Sequence[str]) -> list[dict[str, Any]]:
    """Every feedback event of the log with its resolved lead, oldest first."""
    from leadscore.store.schema import events, identities, leads

    user = identities.alias("u")
    anonymous = identities.alias("a")
    lead = leads.alias("l")
    resolved = func.coalesce(user.c.lead_id, anonymous.c.lead_id)
    query = select(events.c.event, events.c.timestamp, events.c.message,
                   func.coalesce(lead.c.merged_into, resolved).label("lead_id")).select_from(
        events.outerjoin(user, and_(user.c.kind == "user", user.c.id == events.c.user_id))
        .outerjoin(anonymous, and_(events.c.user_id.is_(None), anonymous.c.kind == "anonymous",
                                   anonymous.c.id == events.c.anonymous_id))
        .outerjoin(lead, lead.c.id == resolved)).where(
        events.c.event.in_(list(names)), events.c.type != "page").order_by(
        events.c.timestamp, events.c.seq)
    return [{"event": e, "at": int(t), "message": m, "lead_id": lead_id}
            for e, t, m, lead_id in connection.execute(query) if lead_id is not None]
