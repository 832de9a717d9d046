"""Lead state: what the incremental engine keeps of one lead (`LeadState`) and of one lead
under one model (`ModelState`): rule states, the sums they make, stages, purchases, interests,
program points, the MQL flag. `ModelState.to_dict` is the JSON the store keeps: its format is
public (stores already hold it)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from leadscore.engine.incremental.fit import Fit
from leadscore.engine.incremental.interests import states_from_list, states_to_list
from leadscore.engine.incremental.program_points import ProgramPoints
from leadscore.engine.incremental.rule_state import DecayedSum, RuleState
from leadscore.errors import EngineError
from leadscore.events import Lead
from leadscore.model.compiled import CompiledModel
from leadscore.model.interests import compile_interests
from leadscore.timeutil import now_us, parse_timestamp


class ModelState:
    """One lead under one model."""

    __slots__ = ("bound", "bound_at", "capped", "fit", "handoffs", "interests", "last_buy", "mql",
                 "negative", "program", "purchases", "rules", "since", "spend", "stage_set",
                 "stage_times", "sums")

    def __init__(self, model: CompiledModel):
        self.rules: dict[int, RuleState] = {}   # rule index → state, once it matched
        # The uncapped rules' points summed per half-life (derived from `rules`, not saved).
        self.sums: dict[float | None, DecayedSum] = {}       # rules with positive points
        self.negative: dict[float | None, DecayedSum] = {}   # ... and with negative points
        self.capped: dict[int, RuleState] = {}  # the capped rules' states, scored one by one
        # An upper bound of engagement from now on: the positive part at the last exact
        # evaluation plus the points added since (decay only lowers it, negative points never
        # raise it). While fit + bound is below the MQL threshold no crossing is possible and
        # `update_many` skips the evaluation. A new state has no engagement.
        self.bound = 0.0
        self.bound_at = 0          # the bound holds from this time on
        self.stage_times: list[int | None] = [None] * len(model.stages)
        self.purchases = 0
        self.since: int | None = None
        self.last_buy: int | None = None     # the latest purchase, and their total value
        self.spend = 0.0
        self.mql = False
        self.handoffs = 0
        self.fit: Fit | None = None
        self.interests: dict[tuple[int, str], RuleState] | None = None  # (rule, topic) → state
        # `Program Points Added` per (program, reason); the latest `Lifecycle Stage Set`
        # (time, stage rank).
        self.program: dict[tuple[str, str], ProgramPoints] | None = None
        self.stage_set: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "rules": [[i, r.to_dict()] for i, r in self.rules.items()],
            "stage_times": self.stage_times, "purchases": self.purchases,
            "since": self.since, "mql": self.mql, "handoffs": self.handoffs,
            "last_buy": self.last_buy, "spend": self.spend,
        }
        if self.interests:
            out["interests"] = states_to_list(self.interests)
        if self.program:
            out["program"] = [[p, r, g.to_list()] for (p, r), g in self.program.items()]
        if self.stage_set is not None:
            out["stage_set"] = list(self.stage_set)
        return out

    @classmethod
    def from_dict(cls, model: CompiledModel, data: Mapping[str, Any]) -> ModelState:
        state = cls(model)
        if any(i >= len(model.rules) for i, _ in data["rules"]) or len(
                data["stage_times"]) != len(model.stages):
            raise EngineError(f"saved state does not fit model {model.name!r} "
                              "(its rules changed): rescore from the events")
        state.rules = {int(i): RuleState.from_dict(r) for i, r in data["rules"]}
        for index, rule_state in state.rules.items():
            rule = model.rules[index]
            if rule.cap is not None:
                state.capped[index] = rule_state
            else:
                # Each rule's total re-enters its half-life's sum as one term at its `ref`.
                sums = state.sums if rule.points > 0 else state.negative
                acc = sums.setdefault(rule.half_life_days, DecayedSum())
                acc.add(rule.points * rule_state.total, rule_state.ref, rule.half_life_days)
        state.stage_times = list(data["stage_times"])
        state.purchases, state.since = int(data["purchases"]), data["since"]
        if state.purchases and "last_buy" not in data:
            # Saved before recency and monetary were kept: they would read as no purchase.
            raise EngineError(f"saved state of model {model.name!r} predates recency and "
                              "monetary: rescore from the events")
        state.last_buy, state.spend = data.get("last_buy"), float(data.get("spend", 0.0))
        state.mql, state.handoffs = bool(data["mql"]), int(data["handoffs"])
        state.bound = math.inf    # unknown until the next exact evaluation
        state.interests = states_from_list(data.get("interests"), compile_interests(model.model))
        if data.get("program"):
            state.program = {}
            half_life = model.program_half_life
            for program, reason, saved in data["program"]:
                group = state.program[(program, reason)] = ProgramPoints.from_list(saved)
                for sums, part in ((state.sums, group.positive),
                                   (state.negative, group.negative)):
                    sums.setdefault(half_life, DecayedSum()).add(part.total, part.ref, half_life)
        if data.get("stage_set") is not None:
            state.stage_set = (int(data["stage_set"][0]), int(data["stage_set"][1]))
        return state


class LeadState:
    """One lead: its profile, the time of its latest event folded in, its state under each
    model."""

    __slots__ = ("latest", "lead", "models")

    def __init__(self, lead_id: str):
        self.lead = Lead(lead_id)
        self.latest: int | None = None
        self.models: dict[str, ModelState] = {}


def read_time(lead: LeadState, as_of: object, default_now: bool = False) -> int:
    """The time to score at: `as_of` (µs, ISO string or datetime), else the lead's latest
    event (updates) or now (reads); never before events already folded in."""
    if as_of is not None and not isinstance(as_of, int):
        as_of = parse_timestamp(as_of)
    if as_of is None:
        if default_now:
            return max(now_us(), lead.latest or 0)
        return lead.latest if lead.latest is not None else now_us()
    if lead.latest is not None and as_of < lead.latest:
        raise EngineError("as_of is before events this scorer has already seen; score "
                          "past dates with `explain` or the batch engine")
    return as_of
