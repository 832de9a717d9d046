"""SLAs: an owner has `accept_within_hours` (per routing rule) to answer a handoff. The answer
is the first feedback event after the assignment (from the API, the dashboard or a CRM's
`track`: one log); a handoff not answered in time is, as its rule says, escalated (a second
handoff, to the manager), reassigned (to the team's next free member) or recycled (a `Lead
Recycled` event). `sweep` does it; the server runs it every `SWEEP_SECONDS`."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection

from leadscore.sales.assign import route
from leadscore.sales.feedback import ANSWERS, EVENT_STATUSES
from leadscore.store import outbox
from leadscore.store import sales as store
from leadscore.store.database import Database
from leadscore.timeutil import iso, now_us

US_PER_HOUR = 3_600_000_000
SWEEP_SECONDS = 30.0


def answer_of(connection: Connection, row: dict[str, Any]) -> tuple[str, int] | None:
    """The first verdict (event name, time) on the lead at or after its assignment."""
    for name, at in store.feedback_times(connection, row["lead_id"], ANSWERS):
        if at >= row["assigned_at"]:
            return name, at
    return None


def sweep(db: Database, ingest: Callable[[Sequence[Any]], Any], now: int | None = None,
          on_recycled: Callable[[str], None] | None = None) -> dict[str, int]:
    """Record answers, then act on every breached SLA; returns counts by action.
    `on_recycled(lead_id)` after a lead is recycled (the score reset, where configured)."""
    when = now_us() if now is None else now
    done: dict[str, int] = defaultdict(int)
    recycle: list[dict[str, Any]] = []

    def work(connection: Connection) -> None:
        for row in store.due_breaches(connection, when):
            answered = answer_of(connection, row)
            if answered is not None and answered[1] <= row["due_at"]:
                store.answer(connection, row["handoff_id"], "answered", answered[1])
                done["answered"] += 1
                continue
            store.mark_breached(connection, row["handoff_id"], when)
            done[row["on_breach"] or "escalate"] += 1
            action = row["on_breach"] or "escalate"
            if action == "recycle":
                recycle.append(row)
            else:
                _second_handoff(db, connection, row, action, when)

    db.write(work)
    for row in recycle:
        identity = None
        with db.read() as connection:
            identity = store.identity_of(connection, row["lead_id"])
        if identity is None or row["kind"] != "lead":
            continue
        kind, external = identity
        ingest([{"type": "track", "event": "Lead Recycled", "timestamp": iso(when),
                 "messageId": f"{row['handoff_id']}-recycled",
                 ("userId" if kind == "user" else "anonymousId"): external,
                 "properties": {"status": "recycled", "reason": "SLA breached",
                                "by": "leadscore", "handoff": row["handoff_id"]}}])
        if on_recycled is not None:
            on_recycled(row["lead_id"])
    return dict(done)


def _second_handoff(db: Database, connection: Connection, row: dict[str, Any], action: str,
                    now: int) -> None:
    """Escalate to the rule's manager, or reassign to the team's next free member: a new
    outbox item carrying the first one's payload."""
    first = outbox.get(connection, row["handoff_id"])
    payload = dict(first.payload)
    item = f"{row['handoff_id']}-{'escalated' if action == 'escalate' else 'reassigned'}"
    payload.update({"id": item, "sla": {"breached": True, "action": action,
                                         "first_handoff": row["handoff_id"],
                                         "owner_before": row["owner"],
                                         "assigned_at": iso(row["assigned_at"]),
                                         "due_at": iso(row["due_at"])}})
    if action == "escalate":
        payload.update({"owner": row["manager"], "escalated_to": row["manager"]})
        routed_owner, due = row["manager"], None
        routed = None
    else:
        routed = route(db, connection, row["lead_id"], row["model"], payload, now,
                       kind=row["kind"], exclude=frozenset(
                           [row["owner"]] if row["owner"] else []))
        if routed is None:
            return
        routed_owner, due = routed.owner, routed.due_at
    if not outbox.add(db, connection, item, first.kind, first.lead_id, first.model, payload,
                      now):
        return
    if routed is not None:
        routed.record(db, connection, item, row["lead_id"], row["model"], row["kind"], now)
    else:
        store.add_assignment(db, connection, {
            "handoff_id": item, "lead_id": row["lead_id"], "model": row["model"],
            "kind": row["kind"], "owner": routed_owner, "team": row["team"],
            "rule": row["rule"], "assigned_at": now, "due_at": due, "on_breach": None,
            "manager": None, "status": "open", "answered_at": None, "breached_at": None})


def open_handoffs(db: Database, *, owner: str | None = None, now: int | None = None
                  ) -> dict[str, Any]:
    """Handoffs not answered yet, breached SLAs first then the oldest; and per owner the
    handoffs answered and the median hours to accept."""
    when = now_us() if now is None else now
    with db.read() as connection:
        rows = store.all_assignments(connection)
        answers = {r["handoff_id"]: answer_of(connection, r) for r in rows}
    waiting, accepted = [], defaultdict(list)
    for row in rows:
        answered = answers[row["handoff_id"]]
        if answered is not None:
            if row["owner"] is not None and EVENT_STATUSES[answered[0]] != "rejected":
                accepted[row["owner"]].append((answered[1] - row["assigned_at"]) / US_PER_HOUR)
            continue
        if owner is not None and row["owner"] != owner:
            continue
        breached = row["status"] == "breached" or (row["due_at"] is not None
                                                   and row["due_at"] <= when)
        waiting.append({
            "handoff_id": row["handoff_id"], "lead_id": row["lead_id"], "model": row["model"],
            "kind": row["kind"], "owner": row["owner"], "team": row["team"],
            "assigned_at": iso(row["assigned_at"]),
            "age_hours": round((when - row["assigned_at"]) / US_PER_HOUR, 2),
            "accept_by": None if row["due_at"] is None else iso(row["due_at"]),
            "breached": breached, "on_breach": row["on_breach"]})
    waiting.sort(key=lambda r: (not r["breached"], -r["age_hours"], r["handoff_id"]))
    owners = [{"owner": name, "accepted": len(hours),
               "median_hours_to_accept": round(statistics.median(hours), 2)}
              for name, hours in sorted(accepted.items())]
    return {"open": waiting, "owners": owners, "as_of": iso(when)}
