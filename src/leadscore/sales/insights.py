"""From sales' verdicts back to the points: per month, how many handed-off leads sales
accepted (MQL precision); per rule that fired at the handoff, how often its leads were
accepted and the reasons they were rejected ("12 of 40 rejected as students had 'careers
page' fire")."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from leadscore.sales.feedback import EVENT_STATUSES
from leadscore.store import sales as store
from leadscore.store.database import Database
from leadscore.store.schema import outbox

ACCEPTED = ("accepted", "qualified", "opportunity", "won")


def insights(db: Database, model: str | None = None) -> dict[str, Any]:
    """`months`: [{month, handoffs, answered, accepted, rejected, precision}]; `rules`:
    [{rule, handoffs, answered, accepted, rejected, acceptance, reasons: {reason: n}}]."""
    with db.read() as connection:
        query = select(outbox.c.lead_id, outbox.c.model, outbox.c.created_at,
                       outbox.c.payload).where(outbox.c.kind == "handoff")
        if model is not None:
            query = query.where(outbox.c.model == model)
        handoffs = [h for h in connection.execute(query)
                    if not str((h.payload or {}).get("id", "")).endswith(
                        ("-escalated", "-reassigned"))]
        log = store.feedback_log(connection, list(EVENT_STATUSES))
    verdicts: dict[str, list[tuple[int, str, str | None]]] = defaultdict(list)
    for entry in log:
        properties = (entry["message"] or {}).get("properties") or {}
        reason = properties.get("reason")
        verdicts[entry["lead_id"]].append((entry["at"], EVENT_STATUSES[entry["event"]],
                                           None if reason is None else str(reason)))
    months: dict[str, Counter[str]] = defaultdict(Counter)
    rules: dict[str, Counter[str]] = defaultdict(Counter)
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    for h in handoffs:
        first = next((v for v in verdicts.get(h.lead_id, []) if v[0] >= h.created_at), None)
        month = datetime.fromtimestamp(h.created_at / 1e6, UTC).strftime("%Y-%m")
        fired = {r["rule"] for r in (h.payload or {}).get("reasons") or ()
                 if isinstance(r, dict) and r.get("points")}
        outcome = None if first is None else ("accepted" if first[1] in ACCEPTED else
                                              "rejected" if first[1] == "rejected" else
                                              "other")
        for counter in (months[month], *(rules[rule] for rule in fired)):
            counter["handoffs"] += 1
            if outcome is not None:
                counter["answered"] += 1
                counter[outcome] += 1
        if outcome == "rejected" and first is not None:
            for rule in fired:
                reasons[rule][first[2] or "(no reason)"] += 1
    return {
        "months": [{"month": m, **_rates(c)} for m, c in sorted(months.items())],
        "rules": sorted(({"rule": r, **_rates(c), "reasons": dict(reasons[r].most_common())}
                         for r, c in rules.items()),
                        key=lambda r: (-r["handoffs"], r["rule"])),
    }


def _rates(c: Counter[str]) -> dict[str, Any]:
    answered = c["answered"]
    return {"handoffs": c["handoffs"], "answered": answered, "accepted": c["accepted"],
            "rejected": c["rejected"],
            "precision": round(c["accepted"] / answered, 3) if answered else None}
