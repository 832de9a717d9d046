"""Read-only queries of the dashboard: a keyset-paginated leads list, pipeline counts, the
score distribution, rule firing counts, a lead's handoffs, and an export of the event log.

Keyset pagination (`WHERE (score, lead_id) < (:score, :lead_id) ORDER BY score DESC, lead_id
DESC LIMIT n`) walks the `(model, score, lead_id)` index from where the last page ended: the
cost of a page does not grow with its number, unlike OFFSET. Totals are counted up to
`COUNT_CAP` and shown as "10,000+" beyond, so a page never counts a million rows.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy import Integer as SqlInteger

from leadscore.store.sales import current_owner_subquery, owners_of
from leadscore.store.schema import events, identities, lead_state, leads, outbox, scores
from leadscore.store.scores import contains_pattern

COUNT_CAP = 10_000
PAGE_SIZES = (25, 50, 100)
SORTS = ("score", "activity")
# Traits searched by the text filter, besides the lead id.
SEARCHED_TRAITS = ("email", "name", "first_name", "last_name", "company")
REASONS_SAMPLE = 20_000


@dataclass(frozen=True)
class LeadFilter:
    """What the leads list shows: one model, optional filters, a sort and a direction."""

    model: str
    grades: tuple[str, ...] = ()
    temperatures: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    disqualified: bool | None = None
    q: str = ""
    sort: str = "score"
    descending: bool = True
    owners: tuple[str, ...] = ()        # sales' owners (their leads' latest assignment)


@dataclass(frozen=True)
class LeadPage:
    rows: list[dict[str, Any]]
    total: int              # capped at COUNT_CAP + 1 ("10,000+")
    next_cursor: str | None
    prev_cursor: str | None


def filter_conditions(f: LeadFilter) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a lead filter (the leads list and a segment's members alike)."""
    out: list[ColumnElement[bool]] = [scores.c.model == f.model,
                                      leads.c.merged_into.is_(None)]
    for column, values in ((scores.c.grade, f.grades), (scores.c.temperature, f.temperatures),
                           (scores.c.stage, f.stages)):
        if values:
            out.append(column.in_(list(values)))
    if f.disqualified is not None:
        out.append(scores.c.disqualified.is_(f.disqualified))
    if f.owners:
        owners = current_owner_subquery()
        out.append(scores.c.lead_id.in_(select(owners.c.lead_id).where(
            owners.c.owner.in_(list(f.owners)))))
    if f.q:
        pattern = contains_pattern(f.q)
        out.append(or_(scores.c.lead_id.ilike(pattern, escape="\\"),
                       leads.c.account_id.ilike(pattern, escape="\\"),
                       *(leads.c.traits[name].as_string().ilike(pattern, escape="\\")
                         for name in SEARCHED_TRAITS)))
    return out


def encode_cursor(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


def decode_cursor(text: str) -> list[Any] | None:
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, TypeError):
        return None
    return value if isinstance(value, list) and len(value) == 3 else None


def list_page(connection: Connection, f: LeadFilter, *, limit: int = 50,
              cursor: str | None = None) -> LeadPage:
    """One page of the leads list. A cursor is `[direction, key, lead_id]`: "after" the row
    (the next page) or "before" it (the previous page)."""
    if f.sort not in SORTS:
        raise ValueError(f"unknown sort {f.sort!r}; expected one of {', '.join(SORTS)}")
    key: Any = scores.c.score if f.sort == "score" else lead_state.c.latest
    where = filter_conditions(f)
    base = scores.join(leads, leads.c.id == scores.c.lead_id)
    if f.sort == "activity":
        base = lead_state.join(scores, and_(scores.c.lead_id == lead_state.c.lead_id,
                                            scores.c.model == lead_state.c.model)).join(
            leads, leads.c.id == scores.c.lead_id)
        where.append(lead_state.c.model == f.model)
        where.append(lead_state.c.latest.is_not(None))
    id_column = lead_state.c.lead_id if f.sort == "activity" else scores.c.lead_id
    decoded = decode_cursor(cursor) if cursor else None
    backwards = decoded is not None and decoded[0] == "before"
    forward_desc = f.descending != backwards          # the direction of this query
    if decoded is not None:
        after = tuple_(key, id_column)
        mark = tuple_(literal(decoded[1]), literal(str(decoded[2])))
        where.append(after < mark if forward_desc else after > mark)
    order = [key.desc(), id_column.desc()] if forward_desc else [key.asc(), id_column.asc()]
    columns = [scores.c.lead_id, scores.c.score, scores.c.fit, scores.c.engagement,
               scores.c.grade, scores.c.temperature, scores.c.stage, scores.c.mql,
               scores.c.disqualified, scores.c.disqualify_reason, scores.c.as_of,
               leads.c.traits, leads.c.account_id]
    if f.sort == "activity":
        columns.append(lead_state.c.latest)
    query = select(*columns).select_from(base).where(*where).order_by(*order).limit(limit + 1)
    found = [dict(row._mapping) for row in connection.execute(query)]
    more = len(found) > limit
    found = found[:limit]
    if backwards:
        found.reverse()
    owned = owners_of(connection, [r["lead_id"] for r in found])
    for row in found:
        row["owner"] = owned.get(row["lead_id"])
    if f.sort == "score" and found:
        latest = dict(connection.execute(select(lead_state.c.lead_id, lead_state.c.latest).where(
            lead_state.c.model == f.model,
            lead_state.c.lead_id.in_([r["lead_id"] for r in found]))).all())
        for row in found:
            row["latest"] = latest.get(row["lead_id"])
    sort_key = "score" if f.sort == "score" else "latest"
    next_cursor = prev_cursor = None
    if found:
        first, last = found[0], found[-1]
        if more or backwards:
            next_cursor = encode_cursor(["after", last[sort_key], last["lead_id"]])
        if decoded is not None and (more or not backwards):
            prev_cursor = encode_cursor(["before", first[sort_key], first["lead_id"]])
    return LeadPage(found, count(connection, f), next_cursor, prev_cursor)


def count(connection: Connection, f: LeadFilter, cap: int = COUNT_CAP) -> int:
    """How many leads match, counted up to `cap` + 1."""
    inner = select(literal(1)).select_from(scores.join(leads, leads.c.id == scores.c.lead_id)
                                           ).where(*filter_conditions(f)).limit(cap + 1).subquery()
    return int(connection.execute(select(func.count()).select_from(inner)).scalar() or 0)


def stage_values(connection: Connection, model: str) -> list[str]:
    return sorted(s for s in connection.execute(
        select(scores.c.stage).where(scores.c.model == model).distinct()).scalars() if s)


# ---- pipeline


def pipeline(connection: Connection, model: str) -> list[dict[str, Any]]:
    """Counts by stage, grade, temperature and disqualification reason, in one scan."""
    query = select(scores.c.stage, scores.c.grade, scores.c.temperature,
                   scores.c.disqualified, scores.c.disqualify_reason, scores.c.mql,
                   func.count().label("n")).where(scores.c.model == model).group_by(
        scores.c.stage, scores.c.grade, scores.c.temperature, scores.c.disqualified,
        scores.c.disqualify_reason, scores.c.mql)
    return [dict(row._mapping) for row in connection.execute(query)]


def handoffs_since(connection: Connection, model: str | None, since: int
                   ) -> list[dict[str, Any]]:
    """Handoffs written since `since` (µs): id, lead, model, created_at and the crossing
    time from the payload."""
    query = select(outbox.c.id, outbox.c.lead_id, outbox.c.model, outbox.c.created_at,
                   outbox.c.payload).where(outbox.c.kind == "handoff",
                                           outbox.c.created_at >= since)
    if model is not None:
        query = query.where(outbox.c.model == model)
    return [dict(row._mapping) for row in connection.execute(query)]


def lead_handoffs(connection: Connection, lead_id: str) -> list[dict[str, Any]]:
    query = select(outbox).where(outbox.c.lead_id == lead_id).order_by(
        outbox.c.created_at.desc())
    return [dict(row._mapping) for row in connection.execute(query)]


# ---- model


def _floor(column: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return cast(func.floor(column), SqlInteger)
    truncated = cast(column, SqlInteger)      # SQLite truncates toward zero
    return case((column < truncated, truncated - 1), else_=truncated)


def score_histogram(connection: Connection, model: str) -> list[dict[str, Any]]:
    """Leads per whole point of score (floor), grade and disqualification."""
    dialect = connection.dialect.name
    point = _floor(scores.c.score, dialect).label("point")
    query = select(point, scores.c.grade, scores.c.disqualified,
                   func.count().label("n")).where(scores.c.model == model).group_by(
        point, scores.c.grade, scores.c.disqualified)
    return [dict(row._mapping) for row in connection.execute(query)]


def rule_counts(connection: Connection, model: str, sample: int = REASONS_SAMPLE
                ) -> tuple[dict[str, dict[str, float]], int]:
    """Per rule: the leads it gives points to (or disqualifies) and the events it matched,
    over the saved reasons of at most `sample` leads (the first by id); and the leads read."""
    counts: dict[str, dict[str, float]] = {}
    read = 0
    for (reasons,) in connection.execute(select(scores.c.reasons).where(
            scores.c.model == model).order_by(scores.c.lead_id).limit(sample)):
        read += 1
        for reason in reasons or ():
            if reason.get("kind") != "disqualify" and not reason.get("points"):
                continue
            entry = counts.setdefault(reason["rule"], {"leads": 0, "matched": 0})
            entry["leads"] += 1
            entry["matched"] += reason.get("matched") or 0
    return counts, read


# ---- exports for the backtest


def export_events(connection: Connection) -> list[dict[str, Any]]:
    """Every track/page/screen message of the log as sent, with its resolved lead and its
    stored (clamped) time: the input of a backtest over the store (the filtered ones left
    out, as they were when scored)."""
    user = identities.alias("u")
    anonymous = identities.alias("a")
    lead = leads.alias("l")
    resolved = func.coalesce(user.c.lead_id, anonymous.c.lead_id)
    query = select(events.c.message, events.c.timestamp,
                   func.coalesce(lead.c.merged_into, resolved).label("lead_id")).select_from(
        events.outerjoin(user, and_(user.c.kind == "user", user.c.id == events.c.user_id))
        .outerjoin(anonymous, and_(events.c.user_id.is_(None), anonymous.c.kind == "anonymous",
                                   anonymous.c.id == events.c.anonymous_id))
        .outerjoin(lead, lead.c.id == resolved)).where(
        events.c.type.in_(("track", "page", "screen")), events.c.filtered.is_(None)
    ).order_by(events.c.seq)
    return [{"message": m, "timestamp": t, "lead_id": lead_id}
            for m, t, lead_id in connection.execute(query) if lead_id is not None]


def export_leads(connection: Connection) -> list[dict[str, Any]]:
    """Every live lead: id, traits and its account's traits."""
    from leadscore.store.schema import accounts

    query = select(leads.c.id, leads.c.traits, accounts.c.traits.label("account")).select_from(
        leads.outerjoin(accounts, accounts.c.id == leads.c.account_id)).where(
        leads.c.merged_into.is_(None))
    return [{"lead_id": i, "traits": t or {}, "account": a or {}}
            for i, t, a in connection.execute(query)]


def filtered_counts(connection: Connection) -> dict[str, int]:
    """How many logged events each filter kept out of scoring (`events.filtered`), most
    first; read from the index of the filtered rows."""
    rows = connection.execute(select(events.c.filtered, func.count()).where(
        events.c.filtered.isnot(None)).group_by(events.c.filtered)).all()
    return {str(name): int(n) for name, n in sorted(rows, key=lambda r: (-r[1], r[0]))}
