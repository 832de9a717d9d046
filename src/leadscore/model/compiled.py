"""A model made ready to run: conditions parsed, globs compiled, stages ranked.

Both engines start from here; the incremental engine also uses the small functions at the end
(grade, temperature, mql, stage) that the batch engine writes as SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from leadscore.events import Event, Lead
from leadscore.globs import glob_to_regex
from leadscore.model import conditions as cond
from leadscore.model.ages import age_days
from leadscore.model.schema import STAGES, EventMatch, Model

STAGE_RANK = {stage: rank for rank, stage in enumerate(STAGES)}
MQL_RANK = STAGE_RANK["mql"]
CUSTOMER_RANK = STAGE_RANK["customer"]


@dataclass(frozen=True)
class Matcher:
    """Which events a rule listens to: names or page globs, plus `where`."""

    events: frozenset[str]
    pages: tuple[str, ...]
    page_regex: re.Pattern[str] | None
    where: cond.Condition | None

    @classmethod
    def of(cls, spec: EventMatch) -> Matcher:
        regex = None
        if spec.pages:
            regex = re.compile("|".join(f"(?:{glob_to_regex(g).pattern})" for g in spec.pages),
                               re.DOTALL)
        where = cond.parse(spec.where, scope="event") if spec.where else None
        return cls(frozenset(spec.events), spec.pages, regex, where)

    def matches(self, event: Event) -> bool:
        if self.page_regex is not None:
            if event.type != "page" or event.path is None:
                return False
            if self.page_regex.fullmatch(event.path) is None:
                return False
        elif event.type == "page" or event.event not in self.events:
            return False
        return self.where is None or cond.evaluate(self.where, event.get)


@dataclass(frozen=True)
class FitRule:
    index: int
    name: str
    when: cond.Condition | None
    points: float
    bands: tuple[tuple[cond.Condition, float], ...]
    disqualify: str | None
    # `age_of`: the canonical path of the date trait whose age in days the bands compare
    age_of: str | None = None

    def points_for(self, lead: Lead, as_of: int | None = None) -> float | None:
        """The points this rule gives the lead (at `as_of`, µs, for an `age_of` rule), or
        None where it does not match."""
        if self.bands:
            resolve: cond.Resolver = lead.get
            if self.age_of is not None:
                if as_of is None:
                    raise ValueError(f"fit rule {self.name!r} reads an age: it needs as_of")
                age = age_days(lead.get(self.age_of), as_of)

                def resolve(_path: str) -> float | None:   # the bands read the age alone
                    return age
            for band, points in self.bands:
                if cond.evaluate(band, resolve):
                    return points
            return None
        assert self.when is not None
        return self.points if cond.evaluate(self.when, lead.get) else None


@dataclass(frozen=True)
class EngagementRule:
    index: int
    name: str
    matcher: Matcher
    points: float
    limit: str | None
    distinct: str | None          # canonical event path
    cap: float | None
    half_life_days: float | None

    @property
    def bucketed(self) -> bool:
        """True when only some matching events count (limit or distinct)."""
        return self.limit is not None or self.distinct is not None


@dataclass(frozen=True)
class StageRule:
    index: int
    stage: str
    rank: int
    matcher: Matcher | None
    when: cond.Condition | None
    back: bool


@dataclass(frozen=True)
class CompiledModel:
    model: Model
    applies_to: cond.Condition | None
    fit: tuple[FitRule, ...]
    rules: tuple[EngagementRule, ...]
    stages: tuple[StageRule, ...]
    grades: tuple[tuple[str, float], ...]

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def timezone(self) -> str:
        return self.model.timezone

    @property
    def program_half_life(self) -> float | None:
        """The decay of points a program adds (model.program_events): the model's."""
        decay = self.model.engagement.decay
        return decay.half_life_days if decay is not None else None

    @property
    def fit_moves(self) -> bool:
        """True when fit changes with time alone (an `age_of` rule): it is computed per
        `as_of`, not once per change of traits."""
        return any(rule.age_of is not None for rule in self.fit)

    def applies(self, lead: Lead) -> bool:
        return self.applies_to is None or cond.evaluate(self.applies_to, lead.get)

    def why_not(self, lead: Lead) -> str | None:
        """Why the model does not score the lead, naming `applies_to` and the lead's values
        of the paths it reads (e.g. "applies_to {traits.segment: {eq: consumer}}; the lead's
        traits.segment is 'business'"); None where it applies."""
        if self.applies(lead):
            return None
        assert self.applies_to is not None
        found = [f"the lead's {path} is {value!r}" if (value := lead.get(path)) is not None
                 else f"the lead has no {path}" for path in sorted(cond.paths(self.applies_to))]
        return f"applies_to {flow(self.model.applies_to)}; {', '.join(found)}"

    # ---- the last steps of scoring, shared by the Python paths

    def grade(self, fit: float) -> str | None:
        if not self.grades:
            return None
        for letter, minimum in self.grades:
            if fit >= minimum:
                return letter
        return "F"

    def temperature(self, engagement: float, disqualified: bool) -> str | None:
        if disqualified:
            return "dead"
        t = self.model.temperature
        if t is None:
            return None
        return "hot" if engagement >= t.hot else ("warm" if engagement >= t.warm else "cold")

    @property
    def mql_threshold(self) -> float | None:
        return self.model.thresholds.mql

    def is_mql(self, score: float, grade: str | None, disqualified: bool) -> bool:
        thresholds = self.model.thresholds
        if disqualified or thresholds.mql is None or score < thresholds.mql:
            return False
        required = thresholds.mql_requires_grade
        return required is None or grade_at_least(grade, required)


def grade_at_least(grade: str | None, required: str) -> bool:
    """Grades are letters, A best; F (and no grade) is below every letter."""
    return grade is not None and grade <= required


def _fit_rule(index: int, rule: Any) -> FitRule:
    bands: tuple[tuple[cond.Condition, float], ...] = ()
    if rule.bands is not None:
        bands = tuple((cond.parse({rule.banded: band.condition}, scope="lead",
                                  bare="traits"), band.points) for band in rule.bands)
    when = cond.parse(rule.when, scope="lead", bare="traits") if rule.when else None
    age_of = cond.canonical_path(rule.age_of, "lead", "traits") if rule.age_of else None
    return FitRule(index, rule.name, when, rule.points, bands, rule.disqualify, age_of)


_COMPILED: dict[int, CompiledModel] = {}


def compile_model(model: Model) -> CompiledModel:
    """The runnable form of a validated model (cached per model object)."""
    found = _COMPILED.get(id(model))
    if found is None or found.model is not model:
        found = _COMPILED[id(model)] = _compile(model)
    return found


def _compile(model: Model) -> CompiledModel:
    applies = cond.parse(model.applies_to, scope="lead", bare="traits") \
        if model.applies_to else None
    rules = tuple(
        EngagementRule(i, r.name, Matcher.of(r), r.points, r.limit,
                       cond.canonical_path(r.distinct, "event", None) if r.distinct else None,
                       r.cap, model.rule_half_life(r))
        for i, r in enumerate(model.engagement.rules))
    stages = tuple(
        StageRule(i, r.stage, STAGE_RANK[r.stage], Matcher.of(r.on) if r.on else None,
                  cond.parse(r.when, scope="lead", bare="traits") if r.when else None, r.back)
        for i, r in enumerate(model.lifecycle))
    return CompiledModel(model, applies, tuple(_fit_rule(i, r) for i, r in enumerate(model.fit)),
                         rules, stages, tuple(model.grade_order()))


def flow(value: Any) -> str:
    """A YAML value in one line, as a model file would write it in flow style."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {flow(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(flow(item) for item in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
