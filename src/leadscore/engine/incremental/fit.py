"""Fit: everything about a lead that depends on its traits (fit points and reasons, the
disqualification, the `when` lifecycle rules, `applies_to`), recomputed when they change —
and, in a model with `age_of` rules, for every other `as_of` too (a date's age moves with
time alone)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from leadscore.events import Lead
from leadscore.model.compiled import CompiledModel
from leadscore.model.conditions import evaluate
from leadscore.scores import Reason


@dataclass
class Fit:
    """Everything that depends on traits only, for one model."""

    points: float
    reasons: tuple[Reason, ...]
    disqualify_reason: str | None
    when_rank: int            # highest stage of the `when` lifecycle rules that hold
    applies: bool             # the model's `applies_to` holds
    as_of: int | None = None  # the time it holds at (None: at every time, no `age_of` rule)

    def holds_at(self, as_of: int) -> bool:
        return self.as_of is None or self.as_of == as_of


def fit_reasons(rules: Iterable[Any], profile: Lead, as_of: int | None = None
                ) -> tuple[list[Reason], str | None]:
    """The fit (or disqualify) reason of every rule that holds for `profile` (at `as_of`, for
    `age_of` rules), and the first disqualification's reason — for leads and, on account
    traits, for accounts."""
    reasons: list[Reason] = []
    disqualify_reason = None
    for rule in rules:
        points = rule.points_for(profile, as_of)
        if points is None:
            continue
        if rule.disqualify is not None:
            disqualify_reason = disqualify_reason or rule.disqualify
            reasons.append(Reason(rule.name, "disqualify", points, detail=rule.disqualify))
        else:
            reasons.append(Reason(rule.name, "fit", points))
    return reasons, disqualify_reason


def fit_of(model: CompiledModel, lead: Lead, as_of: int) -> Fit:
    """The lead's fit under `model` at `as_of`, from its traits (and account traits)."""
    reasons, disqualify_reason = fit_reasons(model.fit, lead, as_of)
    when_rank = max((r.rank for r in model.stages
                     if r.when is not None and evaluate(r.when, lead.get)),
                    default=0)
    return Fit(math.fsum(r.points for r in reasons), tuple(reasons), disqualify_reason,
               when_rank, model.applies(lead), as_of if model.fit_moves else None)
