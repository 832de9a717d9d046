"""Engagement: a lead's engagement points under one model at a moment, read from its state
(decay is applied at read time)."""

from __future__ import annotations

import math

from leadscore.engine.incremental.lead_state import ModelState
from leadscore.model.compiled import CompiledModel
from leadscore.timeutil import US_PER_DAY


def engagement_at(model: CompiledModel, state: ModelState, as_of: int) -> tuple[float, float]:
    """Engagement at `as_of` and its positive part: one term per half-life and sign for the
    uncapped rules, then the capped rules one by one. The per-event path: kept free of helper
    calls on purpose."""
    positive = []
    for half_life, acc in state.sums.items():
        positive.append(acc.total if half_life is None else acc.total
                        * 2.0 ** ((acc.ref - as_of) / (half_life * US_PER_DAY)))
    negative = []
    for half_life, acc in state.negative.items():
        negative.append(acc.total if half_life is None else acc.total
                        * 2.0 ** ((acc.ref - as_of) / (half_life * US_PER_DAY)))
    if state.capped:
        rules = model.rules
        for index, rule_state in state.capped.items():
            rule = rules[index]
            half_life = rule.half_life_days
            points = rule.points * (rule_state.total if half_life is None else rule_state.total
                                    * 2.0 ** ((rule_state.ref - as_of) / (half_life * US_PER_DAY)))
            cap = rule.cap
            assert cap is not None
            if points >= 0:
                positive.append(cap if points > cap else points)
            else:
                negative.append(-cap if points < -cap else points)
    if not negative:
        total = math.fsum(positive) if len(positive) > 1 else (
            positive[0] if positive else 0.0)
        return total, total
    # fsum is correctly rounded, so the order of the terms does not matter.
    return math.fsum(positive + negative), math.fsum(positive)
