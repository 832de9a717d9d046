"""Interests in the incremental engine: per lead, model, interest rule and topic one
`RuleState` (decay, `limit`, `distinct` exactly as for engagement rules, per topic); a topic's
weight is the sum over the rules of their capped totals (docs/model-format.md, "interests")."""

from __future__ import annotations

import math
from typing import Any

from leadscore.engine.incremental.rule_state import RuleState, bucket
from leadscore.events import Event
from leadscore.model.interests import PROFILE_SIZE, InterestRule, ranked, summary
from leadscore.scores import profile_json

InterestStates = dict[tuple[int, str], RuleState]   # (interest rule index, topic) → state


class InterestDispatch:
    """Which interest rules an event can match: by name, or by page glob (cached per path)."""

    def __init__(self, rules: tuple[InterestRule, ...]):
        self.rules = rules
        self.by_name: dict[str, list[InterestRule]] = {}
        for rule in rules:
            for name in rule.rule.matcher.events:
                self.by_name.setdefault(name, []).append(rule)
        self.page_rules = [r for r in rules if r.rule.matcher.page_regex is not None]
        self.by_path: dict[str, list[InterestRule]] = {}

    def rules_for(self, event: Event) -> list[InterestRule]:
        if event.type == "page":
            if event.path is None:
                return []
            candidates = self.by_path.get(event.path)
            if candidates is None:
                candidates = [r for r in self.page_rules
                              if r.rule.matcher.page_regex.fullmatch(  # type: ignore[union-attr]
                                  event.path)]
                if len(self.by_path) < 100_000:
                    self.by_path[event.path] = candidates
        else:
            candidates = self.by_name.get(event.event or "", [])
        return [r for r in candidates if r.rule.matcher.matches(event)]

    def fold(self, states: InterestStates | None, event: Event, timezone: str
             ) -> InterestStates | None:
        """Add one event to a lead's interest states (created on the first match)."""
        for interest in self.rules_for(event):
            topic = interest.topic.of(event)
            if topic is None:
                continue
            if states is None:
                states = {}
            key = (interest.index, topic)
            state = states.get(key)
            if state is None:
                state = states[key] = RuleState()
            rule = interest.rule
            bucketed = rule.bucketed
            state.add(event.timestamp, rule.half_life_days,
                      bucket(rule, event, timezone) if bucketed else None, bucketed)
        return states


def weights(rules: tuple[InterestRule, ...], states: InterestStates | None, as_of: int
            ) -> dict[str, float]:
    """Every topic's weight at `as_of` (all topics, before ranking)."""
    if not states:
        return {}
    parts: dict[str, list[float]] = {}
    for (index, topic), state in states.items():
        rule = rules[index].rule
        points = rule.points * state.value(as_of, rule.half_life_days)
        if rule.cap is not None:
            points = max(-rule.cap, min(rule.cap, points))
        parts.setdefault(topic, []).append(points)
    return {topic: math.fsum(values) for topic, values in parts.items()}


def profile(rules: tuple[InterestRule, ...], states: InterestStates | None, as_of: int,
            size: int | None = PROFILE_SIZE) -> tuple[tuple[str, float], ...]:
    """The ranked interest profile: topics with weight ≥ `MIN_WEIGHT`, highest first, top
    `size`."""
    return ranked(weights(rules, states, as_of), size)


def states_to_list(states: InterestStates | None) -> list[Any]:
    return [[i, topic, s.to_dict()] for (i, topic), s in (states or {}).items()]


def states_from_list(data: Any, rules: tuple[InterestRule, ...]) -> InterestStates | None:
    if not data:
        return None
    states: InterestStates = {}
    for index, topic, saved in data:
        if int(index) >= len(rules):
            continue      # a rule removed since: its interest is gone
        states[(int(index), str(topic))] = RuleState.from_dict(saved)
    return states


HANDOFF_INTERESTS = 5       # the top topics a handoff carries


def handoff_interests(profile: tuple[tuple[str, float], ...] | list[tuple[str, float]]
                      ) -> dict[str, Any]:
    """What a handoff says of a ranked profile: `interests` (its top, [{topic, weight}]) and
    `interested_in`, the line for people (`model.interests.summary`)."""
    top = list(profile)[:HANDOFF_INTERESTS]
    return {"interests": profile_json(top), "interested_in": summary(top)}
