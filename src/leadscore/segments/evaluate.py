"""Segment conditions evaluated for one lead in Python: the live service and program runs.

`facts_for` gathers what a condition reads — traits, account, the score under the segment's
model, interests, stage, the customer's recency/frequency/monetary/tenure, the events — and
`holds` evaluates the tree. `next_change` says when the passing of time alone (a `within_days`
window closing) could change the answer, so the live keeper rechecks the lead then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from leadscore.engine.incremental import Scorer
from leadscore.engine.incremental.customers import customer_facts
from leadscore.events import Event
from leadscore.model import conditions as cond
from leadscore.segments.definition import And, Behaviour, InSegment, Node, Not, Or, Segment
from leadscore.timeutil import US_PER_DAY


@dataclass
class LeadFacts:
    """Everything a segment condition can read about one lead at `as_of` (µs)."""

    lead_id: str
    as_of: int
    traits: Mapping[str, Any] = field(default_factory=dict)
    account: Mapping[str, Any] = field(default_factory=dict)
    score: Mapping[str, Any] | None = None          # the Score's fields; None: not scored
    interests: Mapping[str, float] = field(default_factory=dict)
    customer: Mapping[str, Any] = field(default_factory=dict)
    events: Sequence[Event] = ()                    # at or before as_of, oldest first
    segments: set[str] = field(default_factory=set)  # segments it is in (read by in_segment)
    step_times: Mapping[str, int] = field(default_factory=dict)   # programs: step id → time

    def get(self, path: str) -> Any:
        root, _, rest = path.partition(".")
        if path == "stage":
            return self.score.get("stage") if self.score else None
        if root == "score":
            return self.score.get(rest) if self.score else None
        if root == "interest":
            return self.interests.get(rest)
        if root == "customer":
            return self.customer.get(rest)
        node: Any = self.traits if root == "traits" else (
            self.account if root == "account" else None)
        for part in rest.split("."):
            if not isinstance(node, Mapping):
                return None
            node = node.get(part)
        return node


def count(behaviour: Behaviour, facts: LeadFacts) -> int:
    """Matching events at or before as_of, in the window and since the step."""
    start = None
    if behaviour.within_days is not None:
        start = facts.as_of - round(behaviour.within_days * US_PER_DAY)
    if behaviour.since_step is not None:
        since = facts.step_times.get(behaviour.since_step)
        if since is None:
            return 0
        start = since if start is None else max(start, since)
    found = 0
    for event in facts.events:
        if event.timestamp > facts.as_of or (start is not None and event.timestamp < start):
            continue
        if behaviour.matcher.matches(event):
            found += 1
    return found


def holds(node: Node, facts: LeadFacts) -> bool:
    if isinstance(node, cond.Predicate):
        return cond.holds(node, facts.get(node.path))
    if isinstance(node, Behaviour):
        return (count(node, facts) >= node.at_least) != node.negated
    if isinstance(node, InSegment):
        return node.name in facts.segments
    if isinstance(node, And):
        return all(holds(n, facts) for n in node.items)
    if isinstance(node, Or):
        return any(holds(n, facts) for n in node.items)
    assert isinstance(node, Not)
    return not holds(node.item, facts)


def members(segments: Sequence[Segment], facts: LeadFacts) -> set[str]:
    """The segments (in dependency order) the lead belongs to; fills `facts.segments`."""
    facts.segments = set()
    for segment in segments:
        if holds(segment.when, facts):
            facts.segments.add(segment.name)
    return set(facts.segments)


def next_change(segments: Sequence[Segment], facts: LeadFacts) -> int | None:
    """The earliest time after as_of at which a `within_days` window drops an event."""
    soonest: int | None = None
    for segment in segments:
        for behaviour in segment.behaviours:
            if behaviour.within_days is None:
                continue
            width = round(behaviour.within_days * US_PER_DAY)
            for event in facts.events:
                leaves = event.timestamp + width + 1
                if leaves > facts.as_of and behaviour.matcher.matches(event):
                    soonest = leaves if soonest is None else min(soonest, leaves)
    return soonest


SCORE_FIELDS_ALL = ("fit", "engagement", "score", "grade", "temperature", "stage", "mql",
                    "disqualified", "disqualify_reason")


def facts_from_scorer(scorer: Scorer, lead_id: str, model: str | None, events: Sequence[Event],
                      as_of: int) -> LeadFacts:
    """LeadFacts of a lead held by an incremental Scorer (its events given, oldest first)."""
    lead = scorer.lead(lead_id)
    seen = [e for e in events if e.timestamp <= as_of]
    facts = LeadFacts(lead_id, as_of, dict(lead.traits), dict(lead.account), events=seen)
    if model is not None and model in scorer.models and scorer.models[model].applies(lead):
        score = scorer.score(lead_id, model, as_of=as_of)
        facts.score = {f: getattr(score, f) for f in SCORE_FIELDS_ALL}
        interests = getattr(score, "interests", None)
        if interests:
            facts.interests = dict(interests)
        facts.customer = customer_facts(scorer.models[model], seen, as_of)
    return facts
