"""Simulate a program on history before switching it on: the events are replayed in time
order through the incremental engine, and due enrolments run through the same `advance` as
live, with a context that reads the replayed state (e-mails are recorded, not sent; opens and
clicks they would cause are not invented). One row per step executed:
`lead_id, program, step, action, at, detail`."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from leadscore.addresses import check_address
from leadscore.engine.incremental import Scorer
from leadscore.events import Event, Lead
from leadscore.model.schema import Model
from leadscore.programs.content import pick
from leadscore.programs.definition import Program
from leadscore.programs.runner import Action, Enrolment, advance
from leadscore.segments.definition import Segment
from leadscore.segments.evaluate import LeadFacts, facts_from_scorer, members


@dataclass
class Replay:
    program: Program
    model: Model
    leads: dict[str, Lead]
    content: list[dict[str, Any]] = field(default_factory=list)
    segments: Sequence[Segment] = ()
    emails_per_week: int | None = 3
    emails_per_hour: int | None = None      # a live send rate: history is not sent

    def __post_init__(self) -> None:
        self.scorer = Scorer(self.model)
        self.not_for_model: set[str] = set()   # leads that would enter but the model is not
        #                                        for them (`applies_to`), as live
        self.timezone = self.model.timezone
        self.events: dict[str, list[Event]] = {}
        self.sent: dict[str, list[tuple[int, str | None]]] = {}

    # ---- the runner's Context
    def facts(self, lead_id: str, model: str | None, now: int) -> LeadFacts:
        facts = facts_from_scorer(self.scorer, lead_id, self.model.name,
                                  self.events.get(lead_id, []), now)
        if self.segments:
            members(self.segments, facts)
        return facts

    def paused(self) -> str | None:
        return None                 # nothing is sent: a missing SMTP server or secret is moot

    def unsubscribed(self, lead_id: str, facts: LeadFacts) -> bool:
        # History is the operator's own: its unsubscribes count (live, only trusted ones do).
        return any(e.event == "Unsubscribed" for e in facts.events)

    def address_problem(self, facts: LeadFacts) -> str | None:
        return check_address(facts.traits.get("email"))[1]

    def unconfirmed(self, facts: LeadFacts, now: int) -> int | None:
        return None                 # who would confirm is not known from history

    def emails_since(self, facts: LeadFacts, since: int) -> list[int]:
        return [t for t, _ in self.sent.get(facts.lead_id, []) if t >= since]

    def received(self, lead_id: str) -> set[str]:
        return {c for _, c in self.sent.get(lead_id, []) if c}

    def pick_content(self, facts: LeadFacts, received: set[str]) -> dict[str, Any] | None:
        stage = facts.score.get("stage") if facts.score else None
        return pick(self.content, dict(facts.interests), stage, received)

    # ---- the replay
    def run(self, events: Sequence[Event], start: int, end: int) -> list[Action]:
        for lead_id, lead in self.leads.items():
            self.scorer.identify(lead_id, lead.traits, lead.account, as_of=start)
        due: list[tuple[int, int, str]] = []
        enrolled: dict[str, Enrolment] = {}
        past: dict[str, list[int]] = {}
        inside: set[tuple[str, str]] = set()
        journal: list[Action] = []

        def run_due(until: int) -> None:
            while due and due[0][0] <= until:
                when, _, key = heapq.heappop(due)
                enrolment = enrolled[key]
                if enrolment.status != "active":
                    continue
                found, following = advance(self.program, enrolment, self, when)
                for action in found:
                    if action.action == "send_email" and action.effect:
                        content = action.effect.get("content")
                        self.sent.setdefault(action.lead_id, []).append(
                            (when, content["id"] if content else None))
                journal.extend(found)
                if following is not None:
                    heapq.heappush(due, (following, next(order), key))

        order = iter(range(10**12))
        for event in sorted(events, key=lambda e: e.timestamp):
            if event.timestamp > end:
                break
            run_due(event.timestamp)
            if event.lead_id not in self.leads:
                self.leads[event.lead_id] = Lead(event.lead_id, {}, {})
                self.scorer.identify(event.lead_id, {}, as_of=event.timestamp)
            self.scorer.update_one(event)
            self.events.setdefault(event.lead_id, []).append(event)
            if event.timestamp < start:
                continue
            enter = False
            if self.program.enter_event is not None:
                enter = self.program.enter_event.matches(event)
            elif self.program.enter_segment is not None and self.segments:
                now_in = self.program.enter_segment in members(
                    self.segments, self.facts(event.lead_id, None, event.timestamp))
                pair = (self.program.enter_segment, event.lead_id)
                enter = now_in and pair not in inside
                (inside.add if now_in else inside.discard)(pair)
            if not enter:
                continue
            compiled = self.scorer.models[self.model.name]
            if not compiled.applies(self.scorer.lead(event.lead_id)):
                self.not_for_model.add(event.lead_id)
                continue
            active = [k for k, e in enrolled.items()
                      if e.lead_id == event.lead_id and e.status == "active"]
            times = past.get(event.lead_id, [])
            after = self.program.re_enter_after_us
            if active or (times and (after is None or event.timestamp < times[-1] + after)):
                continue
            key = f"{self.program.name}|{event.lead_id}|{len(times) + 1}"
            past.setdefault(event.lead_id, []).append(event.timestamp)
            enrolled[key] = Enrolment(key, self.program.name, event.lead_id, event.timestamp)
            heapq.heappush(due, (event.timestamp, next(order), key))
        run_due(end)
        return journal


def funnel(program: Program, journal: Sequence[Action]) -> dict[str, Any]:
    entered = {a.key.rsplit("#", 1)[0] for a in journal}
    reached = {s.id: len({a.key.rsplit("#", 1)[0] for a in journal
                          if a.step == s.id and a.action != "exit"}) for s in program.steps}
    exits: dict[str, int] = {}
    for a in journal:
        if a.action == "exit":
            exits[a.detail or "?"] = exits.get(a.detail or "?", 0) + 1
    sales = sum(a.action == "notify_sales" and not (a.detail or "").startswith("skipped")
                for a in journal)
    return {"entered": len(entered), "steps": reached, "exited": exits, "handed_to_sales": sales}
