"""The dashboard's leads list restricted to a segment's members (a query module beside
`store/dashboard.py`, whose filters, cursors and count cap it reuses): keyset pages by
`(score, lead_id)` over `segment_members ⋈ scores ⋈ leads`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, literal, select, tuple_

from leadscore.store.dashboard import (
    COUNT_CAP,
    LeadFilter,
    LeadPage,
    decode_cursor,
    encode_cursor,
    filter_conditions,
)
from leadscore.store.lifecycle import segment_members
from leadscore.store.schema import lead_state, leads, scores


def segment_page(connection: Connection, f: LeadFilter, segment: str, *, limit: int = 50,
                 cursor: str | None = None) -> LeadPage:
    """One page of the leads in `segment` matching `f`, by score (the list's other sort,
    last activity, is not offered with a segment)."""
    where = [*filter_conditions(f), segment_members.c.segment == segment]
    base = segment_members.join(scores, scores.c.lead_id == segment_members.c.lead_id).join(
        leads, leads.c.id == scores.c.lead_id)
    decoded = decode_cursor(cursor) if cursor else None
    backwards = decoded is not None and decoded[0] == "before"
    forward_desc = f.descending != backwards
    if decoded is not None:
        after = tuple_(scores.c.score, scores.c.lead_id)
        mark = tuple_(literal(decoded[1]), literal(str(decoded[2])))
        where.append(after < mark if forward_desc else after > mark)
    order = [scores.c.score.desc(), scores.c.lead_id.desc()] if forward_desc else [
        scores.c.score.asc(), scores.c.lead_id.asc()]
    query = select(scores.c.lead_id, scores.c.score, scores.c.fit, scores.c.engagement,
                   scores.c.grade, scores.c.temperature, scores.c.stage, scores.c.mql,
                   scores.c.disqualified, scores.c.disqualify_reason, scores.c.as_of,
                   leads.c.traits, leads.c.account_id).select_from(base).where(
        *where).order_by(*order).limit(limit + 1)
    found: list[dict[str, Any]] = [dict(r._mapping) for r in connection.execute(query)]
    more = len(found) > limit
    found = found[:limit]
    if backwards:
        found.reverse()
    if found:
        latest = dict(connection.execute(select(lead_state.c.lead_id, lead_state.c.latest).where(
            lead_state.c.model == f.model,
            lead_state.c.lead_id.in_([r["lead_id"] for r in found]))).all())
        for row in found:
            row["latest"] = latest.get(row["lead_id"])
    next_cursor = prev_cursor = None
    if found:
        first, last = found[0], found[-1]
        if more or backwards:
            next_cursor = encode_cursor(["after", last["score"], last["lead_id"]])
        if decoded is not None and (more or not backwards):
            prev_cursor = encode_cursor(["before", first["score"], first["lead_id"]])
    inner = select(literal(1)).select_from(base).where(
        *filter_conditions(f), segment_members.c.segment == segment).limit(
        COUNT_CAP + 1).subquery()
    total = int(connection.execute(select(func.count()).select_from(inner)).scalar() or 0)
    return LeadPage(found, total, next_cursor, prev_cursor)
