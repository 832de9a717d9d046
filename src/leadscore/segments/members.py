"""The columns a segment export adds per member (`fields=`): traits, account traits and the
scores of one model, read for many members in a few statements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from leadscore.store import leads as lead_store
from leadscore.store.schema import scores

MEMBER_SCORE_FIELDS = ("score", "fit", "engagement", "grade", "temperature", "stage", "mql",
                       "disqualified", "disqualify_reason")
CHUNK = 500     # ids per IN list: far below SQLite's and PostgreSQL's parameter limits


def member_fields(text: str | None) -> list[str]:
    """The fields asked for, in order, without repeats; ValueError names an unknown one."""
    wanted = list(dict.fromkeys(f.strip() for f in (text or "").split(",") if f.strip()))
    for name in wanted:
        prefix, _, key = name.partition(".")
        if not (name in MEMBER_SCORE_FIELDS or name == "account_id"
                or (prefix in ("traits", "account") and key)):
            raise ValueError(
                f"fields: unknown field {name!r}; expected traits.<name>, account.<name>, "
                f"account_id or one of {', '.join(MEMBER_SCORE_FIELDS)}")
    return wanted


def member_details(connection: Connection, lead_ids: Sequence[str], fields: Sequence[str],
                   model: str | None) -> dict[str, dict[str, Any]]:
    """For each lead, `{field: value}` (None where the lead has no such trait or score)."""
    details: dict[str, dict[str, Any]] = {lead_id: {} for lead_id in lead_ids}
    if not fields:
        return details
    score_fields = [f for f in fields if f in MEMBER_SCORE_FIELDS]
    for start in range(0, len(lead_ids), CHUNK):
        chunk = lead_ids[start:start + CHUNK]
        rows = lead_store.load_many(connection, chunk)
        saved: dict[str, Any] = {}
        if score_fields and model is not None:
            saved = {row.lead_id: row for row in connection.execute(
                select(scores).where(scores.c.lead_id.in_(chunk), scores.c.model == model))}
        for lead_id in chunk:
            lead, score = rows.get(lead_id), saved.get(lead_id)
            out = details[lead_id]
            for name in fields:
                prefix, _, key = name.partition(".")
                if name in MEMBER_SCORE_FIELDS:
                    out[name] = getattr(score, name) if score is not None else None
                elif lead is None:
                    out[name] = None
                elif name == "account_id":
                    out[name] = lead.account_id
                else:
                    out[name] = (lead.traits if prefix == "traits" else lead.account).get(key)
    return details
