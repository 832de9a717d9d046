"""The incremental engine: one event or one trait update at a time, constant work per event.

`Scorer` keeps, per lead and model, one `RuleState` per engagement rule and the latest time of
each lifecycle rule. Fit depends on traits only and is recomputed when they change. Scores are
read at any `as_of` not before the events folded in; decay is applied at read time.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, cast

from leadscore.engine.incremental.interests import (
    InterestDispatch,
    profile,
    states_from_list,
    states_to_list,
)
from leadscore.engine.incremental.lifecycle import stage_of
from leadscore.engine.incremental.rule_state import (
    DecayedSum,
    ProgramPoints,
    RuleState,
    bucket,
    decay_factor,
)
from leadscore.errors import EngineError
from leadscore.events import Event, Lead, event_from_message
from leadscore.model.compiled import (
    CUSTOMER_RANK,
    CompiledModel,
    EngagementRule,
    compile_model,
)
from leadscore.model.interests import compile_interests
from leadscore.model.program_events import NAMES as PROGRAM_EVENTS
from leadscore.model.program_events import points_reason, program_points, stage_set
from leadscore.model.purchases import value_of
from leadscore.model.schema import Model
from leadscore.scores import Handoff, Reason, Score, Update
from leadscore.timeutil import US_PER_DAY, now_us, parse_timestamp

# From this many events on, `update_many` folds them vectorised (engine.fold_many); below, its
# set-up and the per-lead work it repeats per call cost more than it saves (measured on the
# benchmark model: 1,000-event batches 60k events/s, one at a time 68k, 10,000-event batches 97k).
MANY = 2_000


@dataclass
class _Fit:
    """Everything that depends on traits only, for one model."""

    points: float
    reasons: tuple[Reason, ...]
    disqualify_reason: str | None
    when_rank: int            # highest stage of the `when` lifecycle rules that hold
    applies: bool             # the model's `applies_to` holds


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
        self.fit: _Fit | None = None
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
    __slots__ = ("latest", "lead", "models")

    def __init__(self, lead_id: str):
        self.lead = Lead(lead_id)
        self.latest: int | None = None
        self.models: dict[str, ModelState] = {}


def fit_reasons(rules: Iterable[Any], profile: Lead) -> tuple[list[Reason], str | None]:
    """The fit (or disqualify) reason of every rule that holds for `profile`, and the first
    disqualification's reason — for leads and, on account traits, for accounts."""
    reasons: list[Reason] = []
    disqualify_reason = None
    for rule in rules:
        points = rule.points_for(profile)
        if points is None:
            continue
        if rule.disqualify is not None:
            disqualify_reason = disqualify_reason or rule.disqualify
            reasons.append(Reason(rule.name, "disqualify", points, detail=rule.disqualify))
        else:
            reasons.append(Reason(rule.name, "fit", points))
    return reasons, disqualify_reason


class Scorer:
    """Score leads one event at a time under one or several models.

    >>> scorer = Scorer(load_model("examples/b2c-art-supplies.yaml"))   # doctest: +SKIP
    >>> scorer.identify("ann", {"email": "ann@example.org"})            # doctest: +SKIP
    >>> scorer.update_one({"type": "track", "event": "Newsletter Subscribed", ...})
    """

    def __init__(self, models: Model | Sequence[Model]):
        models = [models] if isinstance(models, Model) else list(models)
        if not models:
            raise EngineError("a Scorer needs at least one model")
        self.models: dict[str, CompiledModel] = {}
        for model in models:
            if model.name in self.models:
                raise EngineError(f"two models are named {model.name!r}")
            self.models[model.name] = compile_model(model)
        self._leads: dict[str, LeadState] = {}
        self._dispatch = {name: _Dispatch(m) for name, m in self.models.items()}
        self._empty_fit: dict[str, _Fit] = {}

    # ---- input

    def identify(self, lead_id: str, traits: Mapping[str, Any] | None = None,
                 account: Mapping[str, Any] | None = None, *,
                 as_of: object = None) -> list[Update]:
        """Merge traits (and account traits) into a lead's profile; re-score its fit."""
        lead = self._lead(str(lead_id))
        when = _read_time(lead, as_of)
        before = self._mql_before(lead, when)
        if traits:
            lead.lead.traits.update(traits)
        if account:
            lead.lead.account.update(account)
        for state in lead.models.values():
            state.fit = None
        return self._evaluate(lead, when, None, before)

    def update_one(self, event: Event | Mapping[str, Any], *,
                   as_of: object = None) -> list[Update]:
        """Fold in one event; return the new score under each model that applies.

        The scores of updates carry the numbers only (no `reasons`, for speed), except where
        a handoff is raised; `score()` gives the reasons at any time.
        """
        if not isinstance(event, Event):
            event = event_from_message(event)
        lead, when, before = self._fold(event, as_of)
        return self._evaluate(lead, when, event, before)

    def update_many(self, events: Iterable[Event | Mapping[str, Any]]) -> list[Handoff]:
        """Fold in many events (in any order); return the handoffs they raised.

        The same state and handoffs as `update_one` on each event in turn (the state up to
        rounding in the last bits); from `MANY` events on, folded in vectorised batches
        (`engine.fold_many`).
        """
        given = list(events)
        if all(map(isinstance, given, repeat(Event))):
            batch = cast(list[Event], given)
        else:
            batch = [e if isinstance(e, Event) else event_from_message(e) for e in given]
        if len(batch) >= MANY:
            from leadscore.engine.incremental.fold_many import (
                fold_many,  # numpy: imported when needed
            )

            return fold_many(self, batch)
        return self._update_each(batch)

    def crossings(self, lead_id: str, *, as_of: object = None) -> list[Handoff]:
        """The handoffs time alone raises for a lead at `as_of` (default: now): negative
        points that decay can lift a score over the MQL threshold between two of its events.
        An event or a trait change checks for a crossing by itself; this asks between them
        (the service's refresh does), so that such a lead is handed off without waiting for
        its next event — once, like every crossing."""
        lead = self._leads.get(str(lead_id))
        if lead is None:
            return []
        when = _read_time(lead, as_of, default_now=True)
        before = self._mql_before(lead, when)
        return [u.handoff for u in self._evaluate(lead, when, None, before, scores=False)
                if u.handoff is not None]

    def _update_each(self, events: Iterable[Event]) -> list[Handoff]:
        """`update_many` one event at a time."""
        handoffs: list[Handoff] = []
        for event in events:
            lead, when, before = self._fold(event, None)
            for update in self._evaluate(lead, when, event, before, scores=False):
                if update.handoff is not None:
                    handoffs.append(update.handoff)
        return handoffs

    def _fold(self, event: Event, as_of: object) -> tuple[LeadState, int, set[str]]:
        """Add one event to its lead's state; return the lead, the read time and the models
        under which the lead was an MQL just before."""
        lead = self._leads.get(event.lead_id) or self._lead(event.lead_id)
        ts = event.timestamp
        latest = lead.latest
        if as_of is not None:
            when = _read_time(lead, as_of)
        else:
            when = ts if latest is None or ts > latest else latest
        before = self._mql_before(lead, when)
        if latest is None or ts > latest:
            lead.latest = ts
        for name, dispatch in self._dispatch.items():
            model = dispatch.model
            state = lead.models.get(name)
            if state is None:
                state = lead.models[name] = ModelState(model)
            for rule in dispatch.rules_for(event):
                rule_state = state.rules.get(rule.index)
                if rule_state is None:
                    rule_state = state.rules[rule.index] = RuleState()
                    if rule.cap is not None:
                        state.capped[rule.index] = rule_state
                bucketed = rule.bucketed
                half_life = rule.half_life_days
                change = rule_state.add(ts, half_life,
                                        bucket(rule, event, model.timezone) if bucketed
                                        else None, bucketed)
                if change is False:
                    continue
                points = rule.points
                if points > 0:
                    state.bound += points
                if rule.cap is None:
                    sums = state.sums if points > 0 else state.negative
                    acc = sums.get(half_life)
                    if acc is None:
                        acc = sums[half_life] = DecayedSum()
                    acc.add(points, ts, half_life)
                    if change is not None:
                        acc.add(-points, change, half_life)
            if dispatch.stage_rules:
                self._stages(model, state, event)
            if dispatch.interests is not None:
                state.interests = dispatch.interests.fold(state.interests, event, model.timezone)
            if event.event in PROGRAM_EVENTS:
                _program_event(model, state, event)
        return lead, when, before

    # ---- output

    def score(self, lead_id: str, model: str | None = None, *,
              as_of: object = None) -> Score:
        """The lead's score under a model (default: the only one) at `as_of` (default: now)."""
        lead = self._leads.get(str(lead_id))
        if lead is None:
            raise EngineError(f"unknown lead {lead_id!r}")
        compiled = self._model(model)
        state = lead.models.get(compiled.name)
        if state is None:
            state = lead.models[compiled.name] = ModelState(compiled)
        if not (state.fit or self._fit(compiled, lead.lead, state)).applies:
            raise EngineError(f"model {compiled.name!r} does not apply to lead {lead_id!r} "
                              "(its applies_to does not hold)")
        return self._score(compiled, lead, state, _read_time(lead, as_of, default_now=True))

    def scores(self, *, as_of: object = None) -> Iterator[Score]:
        """Every lead's score under every model that applies to it."""
        when = now_us() if as_of is None else _read_time(LeadState(""), as_of)
        for lead in self._leads.values():
            for name, compiled in self.models.items():
                if compiled.applies(lead.lead):
                    state = lead.models.get(name) or ModelState(compiled)
                    yield self._score(compiled, lead, state, max(when, lead.latest or when))

    def leads(self) -> list[str]:
        return list(self._leads)

    def peek(self, lead_id: str, model: str, as_of: int) -> tuple[float, bool] | None:
        """(engagement, disqualified) of a lead under a model at `as_of` (µs), without
        reasons; None where the lead is unknown or the model does not apply to it."""
        lead = self._leads.get(lead_id)
        if lead is None:
            return None
        compiled = self.models[model]
        state = lead.models.get(model)
        if state is None:
            state = lead.models[model] = ModelState(compiled)
        fit = state.fit or self._fit(compiled, lead.lead, state)
        if not fit.applies:
            return None
        return _engagement(compiled, state, as_of)[0], fit.disqualify_reason is not None

    def latest(self, lead_id: str) -> int | None:
        """The time of the lead's latest event folded in."""
        lead = self._leads.get(lead_id)
        return None if lead is None else lead.latest

    def lead(self, lead_id: str) -> Lead:
        return self._leads[lead_id].lead

    # ---- state, for the store

    def state(self, lead_id: str) -> dict[str, Any]:
        lead = self._leads[lead_id]
        return {"lead_id": lead_id, "traits": lead.lead.traits, "account": lead.lead.account,
                "latest": lead.latest,
                "models": {name: s.to_dict() for name, s in lead.models.items()}}

    def load_state(self, data: Mapping[str, Any]) -> None:
        lead = self._lead(str(data["lead_id"]))
        lead.lead.traits, lead.lead.account = dict(data["traits"]), dict(data["account"])
        lead.latest = data["latest"]
        lead.models = {name: ModelState.from_dict(self.models[name], s)
                       for name, s in data["models"].items() if name in self.models}

    # ---- internals

    def _lead(self, lead_id: str) -> LeadState:
        lead = self._leads.get(lead_id)
        if lead is None:
            lead = self._leads[lead_id] = LeadState(lead_id)
        return lead

    def _model(self, name: str | None) -> CompiledModel:
        if name is None:
            if len(self.models) > 1:
                raise EngineError("several models are loaded: name one "
                                  f"({', '.join(self.models)})")
            return next(iter(self.models.values()))
        try:
            return self.models[name]
        except KeyError:
            raise EngineError(f"unknown model {name!r}; loaded: "
                              f"{', '.join(self.models)}") from None

    def _stages(self, model: CompiledModel, state: ModelState, event: Event) -> None:
        purchase = False
        for rule in model.stages:
            if rule.matcher is not None and rule.matcher.matches(event):
                old = state.stage_times[rule.index]
                if old is None or event.timestamp > old:
                    state.stage_times[rule.index] = event.timestamp
                purchase = purchase or rule.rank == CUSTOMER_RANK
        if purchase:
            state.purchases += 1
            if state.since is None or event.timestamp < state.since:
                state.since = event.timestamp
            if state.last_buy is None or event.timestamp > state.last_buy:
                state.last_buy = event.timestamp
            state.spend += value_of(event)

    def _mql_before(self, lead: LeadState, as_of: int) -> set[str]:
        """Models under which the lead is an MQL at `as_of` before the coming change.

        Only asked where the last evaluation was an MQL: a lead that has decayed below the
        threshold since and crosses it again raises a new handoff.
        """
        if not lead.models:
            return set()
        found = set()
        for name, state in lead.models.items():
            if state.mql:
                model = self.models[name]
                fit = state.fit or self._fit(model, lead.lead, state)
                total = fit.points + _engagement(model, state, as_of)[0]
                disqualified = fit.disqualify_reason is not None
                if model.is_mql(total, model.grade(fit.points), disqualified):
                    found.add(name)
        return found

    def _evaluate(self, lead: LeadState, as_of: int, event: Event | None,
                  before: set[str], scores: bool = True) -> list[Update]:
        """Scores after a change, with a handoff where the lead crossed the MQL threshold;
        without `scores`, only the updates that carry a handoff."""
        updates = []
        for name, model in self.models.items():
            state = lead.models.get(name)
            if state is None:
                state = lead.models[name] = ModelState(model)
            fit = state.fit or self._fit(model, lead.lead, state)
            if not fit.applies:
                continue
            if not scores and (fit.disqualify_reason is not None or model.mql_threshold is None
                               or (fit.points + state.bound < model.mql_threshold
                                   and as_of >= state.bound_at)):
                state.mql = False      # no crossing is possible: skip the evaluation
                continue
            engagement, state.bound = _engagement(model, state, as_of)
            state.bound_at = as_of
            total = fit.points + engagement
            disqualified = fit.disqualify_reason is not None
            grade = model.grade(fit.points)
            mql = model.is_mql(total, grade, disqualified)
            state.mql = mql
            if mql and name not in before:
                score = self._score(model, lead, state, as_of)
                state.handoffs += 1
                handoff = Handoff(_handoff_id(lead.lead.lead_id, name, state.handoffs, as_of),
                                  lead.lead.lead_id, name, as_of, score, event)
                updates.append(Update(score, handoff))
            elif scores:
                since = state.since
                stage = stage_of(model, state.stage_times, fit.when_rank, mql, state.stage_set) \
                    if model.stages or state.stage_set else ("mql" if mql else "visitor")
                updates.append(Update(tuple.__new__(Score, (
                    lead.lead.lead_id, name, fit.points, engagement, total, grade,
                    model.temperature(engagement, disqualified), stage, mql, disqualified,
                    fit.disqualify_reason, state.purchases, since,
                    None if since is None else (as_of - since) / US_PER_DAY, as_of, (), (),
                    *_rfm(state, as_of)))))
        return updates

    def _fit(self, model: CompiledModel, lead: Lead, state: ModelState) -> _Fit:
        if state.fit is not None:
            return state.fit
        empty = not lead.traits and not lead.account
        if empty and model.name in self._empty_fit:
            state.fit = self._empty_fit[model.name]
            return state.fit
        reasons, disqualify_reason = fit_reasons(model.fit, lead)
        when_rank = max((r.rank for r in model.stages
                         if r.when is not None and _holds(r.when, lead)),
                        default=0)
        state.fit = _Fit(math.fsum(r.points for r in reasons), tuple(reasons),
                         disqualify_reason, when_rank, model.applies(lead))
        if empty:
            self._empty_fit[model.name] = state.fit
        return state.fit

    def _score(self, model: CompiledModel, lead: LeadState, state: ModelState,
               as_of: int) -> Score:
        """The lead's score with its reasons, rule by rule."""
        fit = state.fit or self._fit(model, lead.lead, state)
        parts = []
        explained = list(fit.reasons)
        for index in sorted(state.rules):
            rule_state, rule = state.rules[index], model.rules[index]
            points = rule.points * rule_state.value(as_of, rule.half_life_days)
            if rule.cap is not None:
                points = max(-rule.cap, min(rule.cap, points))
            parts.append(points)
            explained.append(Reason(rule.name, "engagement", points, rule_state.matched,
                                    rule_state.counted, rule_state.last))
        for (program, why), group in sorted((state.program or {}).items()):
            points = group.value(as_of, model.program_half_life)
            parts.append(points)
            explained.append(Reason(f"program {program}: {why}" if why else f"program {program}",
                                    "program", points, group.matched, group.matched, group.last,
                                    detail=why or None))
        # fsum is correctly rounded: the order of the terms does not matter.
        engagement = math.fsum(parts)
        total = fit.points + engagement
        disqualified = fit.disqualify_reason is not None
        grade = model.grade(fit.points)
        mql = model.is_mql(total, grade, disqualified)
        since = state.since
        return Score(lead.lead.lead_id, model.name, fit.points, engagement, total, grade,
                     model.temperature(engagement, disqualified),
                     stage_of(model, state.stage_times, fit.when_rank, mql, state.stage_set),
                     mql,
                     disqualified, fit.disqualify_reason, state.purchases, since,
                     None if since is None else (as_of - since) / US_PER_DAY, as_of,
                     tuple(explained),
                     profile(compile_interests(model.model), state.interests, as_of),
                     *_rfm(state, as_of))


def _rfm(state: ModelState, as_of: int) -> tuple[float | None, float | None]:
    """recency_days and monetary of a customer (engine.rfm); None, None before a purchase."""
    if state.last_buy is None:
        return None, None
    return (as_of - state.last_buy) / US_PER_DAY, state.spend


def _program_event(model: CompiledModel, state: ModelState, event: Event) -> None:
    """Fold in a `Program Points Added` / `Lifecycle Stage Set` event (model.program_events)."""
    ts = event.timestamp
    points = program_points(event, model.name)
    if points is not None:
        half_life = model.program_half_life
        if state.program is None:
            state.program = {}
        key = points_reason(event)
        group = state.program.get(key)
        if group is None:
            group = state.program[key] = ProgramPoints()
        group.add(points, ts, half_life)
        if points > 0:
            state.bound += points
        sums = state.sums if points > 0 else state.negative
        sums.setdefault(half_life, DecayedSum()).add(points, ts, half_life)
    rank = stage_set(event, model.name)
    if rank is not None:
        old = state.stage_set
        if old is None or ts > old[0] or (ts == old[0] and rank < old[1]):
            state.stage_set = (ts, rank)


def _engagement(model: CompiledModel, state: ModelState, as_of: int) -> tuple[float, float]:
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


class _Dispatch:
    """Which rules an event can match, found without trying every rule.

    Track/screen events are looked up by name; page paths are matched against the page
    globs once per distinct path (cached), as the batch engine does.
    """

    def __init__(self, model: CompiledModel):
        self.model = model
        self.by_name: dict[str, list[EngagementRule]] = {}
        self.page_rules = [r for r in model.rules if r.matcher.page_regex is not None]
        for rule in model.rules:
            for name in rule.matcher.events:
                self.by_name.setdefault(name, []).append(rule)
        self.by_path: dict[str, list[EngagementRule]] = {}
        self.stage_rules = any(r.matcher is not None for r in model.stages)
        interests = compile_interests(model.model)
        self.interests = InterestDispatch(interests) if interests else None

    def rules_for(self, event: Event) -> list[EngagementRule]:
        candidates = self.rules_of(event.type, event.event, event.path)
        if not candidates:
            return candidates
        return [r for r in candidates if r.matcher.where is None or _where(r, event)]

    def rules_of(self, kind: str, name: str | None, path: str | None) -> list[EngagementRule]:
        """The rules an event of this (type, event, path) signature matches, `where` aside."""
        if kind == "page":
            if path is None:
                return []
            candidates = self.by_path.get(path)
            if candidates is None:
                candidates = [r for r in self.page_rules
                              if r.matcher.page_regex.fullmatch(path)]  # type: ignore[union-attr]
                if len(self.by_path) < 100_000:
                    self.by_path[path] = candidates
            return candidates
        return self.by_name.get(name or "", [])


def _where(rule: EngagementRule, event: Event) -> bool:
    from leadscore.model.conditions import evaluate

    assert rule.matcher.where is not None
    return evaluate(rule.matcher.where, event.get)


def _holds(condition: Any, lead: Lead) -> bool:
    from leadscore.model.conditions import evaluate

    return evaluate(condition, lead.get)


def _read_time(lead: LeadState, as_of: object, default_now: bool = False) -> int:
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


def _handoff_id(lead_id: str, model: str, crossing: int, at: int) -> str:
    """A stable id: the same crossing always gets the same id (for deduplication)."""
    return hashlib.sha256(f"{model}\x00{lead_id}\x00{crossing}\x00{at}".encode()).hexdigest()[:32]


def decayed(points: float, age_us: int, half_life_days: float | None) -> float:
    """What `points` earned `age_us` ago are worth now."""
    return points * decay_factor(age_us, half_life_days)
