"""Assigning a new handoff to an owner, in the transaction that writes it to the outbox.

The routing file is read from the store (installed from `routing.yaml` at start or by `PUT
/api/routing`), so every worker routes alike. A rule naming an owner assigns them; a rule
naming a team takes its members round-robin from the team's turn, skipping anyone at their
daily capacity or outside the team's hours; when nobody is free the handoff goes out with its
team and no owner. A lead rejected within `rejected_cooldown_days` is not handed off at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from leadscore.sales.routing import NO_ROUTING, Routing, Rule, Team, parse_routing
from leadscore.store import sales as store
from leadscore.store.database import Database
from leadscore.timeutil import US_PER_DAY, iso, zone

US_PER_HOUR = 3_600_000_000


def routing_of(connection: Connection) -> Routing:
    """The installed routing (none installed: no rules, the default reasons)."""
    text = store.config_text(connection)
    return NO_ROUTING if text is None else parse_routing(text)


@dataclass
class Routed:
    """A handoff's owner, before it is recorded (`record`, once the outbox took it)."""

    owner: str | None
    team: str | None
    rule: Rule | None
    due_at: int | None
    day: str
    turn: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def record(self, db: Database, connection: Connection, handoff_id: str, lead_id: str,
               model: str | None, kind: str, now: int) -> None:
        rule = self.rule
        if not store.add_assignment(db, connection, {
                "handoff_id": handoff_id, "lead_id": lead_id, "model": model, "kind": kind,
                "owner": self.owner, "team": self.team,
                "rule": None if rule is None else rule.index, "assigned_at": now,
                "due_at": self.due_at, "on_breach": None if rule is None else rule.on_breach,
                "manager": None if rule is None else rule.manager, "status": "open",
                "answered_at": None, "breached_at": None}):
            return
        if self.owner is not None:
            store.count_one(db, connection, self.owner, self.day)
        if self.team is not None and self.turn is not None:
            store.set_turn(connection, self.team, self.turn, now)


def cooling_down(connection: Connection, routing: Routing, lead_id: str, now: int) -> bool:
    """Whether the lead was rejected less than the cool-down ago."""
    if routing.rejected_cooldown_days <= 0:
        return False
    times = store.feedback_times(connection, lead_id, ["Lead Rejected"])
    return bool(times) and now - times[-1][1] < routing.rejected_cooldown_days * US_PER_DAY


def route(db: Database, connection: Connection, lead_id: str, model: str | None,
          payload: dict[str, Any], now: int, *, kind: str = "lead",
          exclude: frozenset[str] = frozenset()) -> Routed | None:
    """The owner of a new handoff (None: the lead is cooling down after a rejection, no
    handoff). `payload` gets `owner`, `team`, `routing_rule` and `accept_by`. `exclude`:
    owners not to pick (a reassignment's previous owner)."""
    routing = routing_of(connection)
    if kind == "lead" and cooling_down(connection, routing, lead_id, now):
        return None
    # An account handoff's traits are the account's: its rules read `account.x`.
    account = (payload.get("traits") if kind == "account" else payload.get("account")) or {}
    lead = {"traits": {} if kind == "account" else payload.get("traits") or {},
            "account": account}
    account_owner = account.get("owner") if kind == "account" else None
    segments = store.segments_of(connection, lead_id) if routing.needs_segments and \
        kind == "lead" else frozenset()
    rule = routing.match(lead, model, segments)
    routed = Routed(None, None, rule, None, _day(now, "UTC"))
    if isinstance(account_owner, str) and account_owner:
        routed.owner = account_owner       # an account's handoff goes to the account's owner
    elif rule is not None and rule.owner is not None:
        routed.owner = rule.owner
    elif rule is not None and rule.team is not None:
        pick(db, connection, routing.teams[rule.team], routed, now, exclude)
    if rule is not None and rule.accept_within_hours is not None:
        routed.due_at = now + round(rule.accept_within_hours * US_PER_HOUR)
    routed.fields = {"owner": routed.owner, "team": routed.team,
                     "routing_rule": None if rule is None else rule.label,
                     "accept_by": None if routed.due_at is None else iso(routed.due_at)}
    payload.update(routed.fields)
    return routed


def pick(db: Database, connection: Connection, team: Team, routed: Routed, now: int,
         exclude: frozenset[str]) -> None:
    """The team's next free member from its turn (the team's row locked meanwhile)."""
    routed.team = team.name
    routed.day = _day(now, team.timezone)
    turn = store.lock_team(db, connection, team.name, now)
    if team.hours is not None:
        local = datetime.fromtimestamp(now / 1e6, zone(team.hours.timezone)).time()
        if not team.hours.open_at(local):
            return
    members = team.members
    counts = store.assigned_on(connection, members, routed.day) \
        if team.capacity_per_day is not None else {}
    for step in range(len(members)):
        index = (turn + step) % len(members)
        member = members[index]
        if member in exclude:
            continue
        if team.capacity_per_day is not None and counts.get(member, 0) >= \
                team.capacity_per_day:
            continue
        routed.owner, routed.turn = member, (index + 1) % len(members)
        return


def _day(now: int, tz: str) -> str:
    return datetime.fromtimestamp(now / 1e6, zone(tz)).date().isoformat()
