"""The model format of DESIGN.md §3 as pydantic classes.

Parameters are stored as written (River's habit), so a model round-trips to YAML unchanged.
Conditions stay raw mappings here; `conditions.parse` turns them into a tree, and the loader
reports problems in both with file and line.
"""

from __future__ import annotations

from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from leadscore.filters import ModelFilters

# In rank order. After `mql`, sales' stages (issue #18): `recycled` (back to nurture) and
# `rejected` rank above `mql` so a verdict holds while the score stays over the threshold;
# `sal` (sales accepted) and the rest move on from there.
STAGES: tuple[str, ...] = (
    "visitor", "subscriber", "lead", "mql", "recycled", "rejected", "sal", "sql",
    "opportunity", "customer", "advocate",
)
GRADE_LETTERS: tuple[str, ...] = ("A", "B", "C", "D", "E")
Limit = Literal["once", "daily", "weekly"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Decay(Strict):
    half_life_days: float = Field(gt=0)


class Band(BaseModel):
    """One band of a `bands` rule: operators on the attribute (all must hold) and points."""

    model_config = ConfigDict(extra="allow", frozen=True)
    points: float

    @property
    def condition(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class FitRule(Strict):
    name: str
    when: dict[str, Any] | None = None
    attribute: str | None = None
    # A date trait whose age in days, as of the score's time, the bands compare (model.ages).
    age_of: str | None = None
    bands: list[Band] | None = None
    points: float = 0.0
    disqualify: str | None = None

    @property
    def banded(self) -> str | None:
        """The trait the bands read: `attribute`, or `age_of` (its age in days)."""
        return self.attribute if self.attribute is not None else self.age_of

    @model_validator(mode="after")
    def _one_form(self) -> FitRule:
        if self.attribute is not None and self.age_of is not None:
            raise ValueError("a rule has either `attribute` (its value) or `age_of` (its age "
                             "in days) with its `bands`, not both")
        if self.banded is not None or self.bands is not None:
            if self.banded is None or self.bands is None:
                raise ValueError("`attribute` (or `age_of`) and `bands` go together")
            if self.when is not None:
                raise ValueError("a rule has either `when` or `attribute` + `bands`, not both")
        elif self.when is None:
            raise ValueError("a fit rule needs `when` (with `points` or `disqualify`) "
                             "or `attribute` + `bands`")
        return self


class EventMatch(Strict):
    """What an engagement, interest or lifecycle rule listens to."""

    event: str | list[str] | None = None
    page: str | list[str] | None = None
    where: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _event_or_page(self) -> EventMatch:
        if (self.event is None) == (self.page is None):
            raise ValueError("give exactly one of `event` (a track event name) "
                             "or `page` (a page path glob)")
        return self

    @property
    def events(self) -> tuple[str, ...]:
        if self.event is None:
            return ()
        return (self.event,) if isinstance(self.event, str) else tuple(self.event)

    @property
    def pages(self) -> tuple[str, ...]:
        if self.page is None:
            return ()
        return (self.page,) if isinstance(self.page, str) else tuple(self.page)


class EngagementRule(EventMatch):
    name: str
    points: float
    limit: Limit | None = None
    distinct: str | None = None
    cap: float | None = Field(default=None, gt=0)
    decay: Decay | Literal[False] | None = None   # None: the model's decay


class InterestRule(EventMatch):
    """A topic a matching event shows interest in: fixed, or a template `"{properties.x}"`."""

    topic: str = Field(min_length=1)
    points: float
    name: str | None = None
    limit: Limit | None = None
    distinct: str | None = None
    cap: float | None = Field(default=None, gt=0)
    decay: Decay | Literal[False] | None = None   # None: the model's engagement decay


class Roles(Strict):
    """The buying committee: which values of a lead trait an account wants engaged."""

    attribute: str = Field(min_length=1)
    want: list[str] = Field(min_length=1)


class AccountEngagement(Strict):
    rollup: Literal["sum", "max", "top3_mean"] = "sum"


class AccountThresholds(Strict):
    mqa: float | None = None


class AccountModel(Strict):
    """`account:` — score the company too (B2B)."""

    fit: list[FitRule] = Field(default_factory=list)
    engagement: AccountEngagement = Field(default_factory=AccountEngagement)
    roles: Roles | None = None
    thresholds: AccountThresholds = Field(default_factory=AccountThresholds)


class Engagement(Strict):
    decay: Decay | None = None
    rules: list[EngagementRule] = Field(default_factory=list)


class Temperature(Strict):
    hot: float
    warm: float

    @model_validator(mode="after")
    def _ordered(self) -> Temperature:
        if self.warm > self.hot:
            raise ValueError("`warm` must not be above `hot`")
        return self


class Thresholds(Strict):
    mql: float | None = None
    mql_requires_grade: str | None = None

    @field_validator("mql_requires_grade")
    @classmethod
    def _known_grade(cls, value: str | None) -> str | None:
        letters = (*GRADE_LETTERS, "F")
        if value is not None and value not in letters:
            raise ValueError(f"unknown grade {value!r}; expected one of {', '.join(letters)}")
        return value


class LifecycleRule(Strict):
    stage: str
    on: EventMatch | None = None
    when: dict[str, Any] | None = None
    back: bool = False

    @field_validator("stage")
    @classmethod
    def _known_stage(cls, value: str) -> str:
        if value not in STAGES:
            raise ValueError(f"unknown stage {value!r}; expected one of {', '.join(STAGES)}")
        return value

    @model_validator(mode="after")
    def _on_or_when(self) -> LifecycleRule:
        if (self.on is None) == (self.when is None):
            raise ValueError("a lifecycle rule needs exactly one of `on` (an event) "
                             "or `when` (a condition on traits)")
        if self.back and self.on is None:
            raise ValueError("`back: true` needs `on`: only events move a stage back")
        return self


class ModelTest(Strict):
    """A worked example run by `leadscore check`."""

    name: str
    as_of: str | int
    traits: dict[str, Any] = Field(default_factory=dict)
    account: dict[str, Any] = Field(default_factory=dict)
    events: list[dict[str, Any]] = Field(default_factory=list)
    expect: dict[str, Any]


class Model(Strict):
    schema_version: Literal[1] = 1
    name: str = Field(min_length=1)
    description: str | None = None
    applies_to: dict[str, Any] | None = None
    timezone: str = "UTC"
    fit: list[FitRule] = Field(default_factory=list)
    engagement: Engagement = Field(default_factory=Engagement)
    grades: dict[str, float] | None = None
    temperature: Temperature | None = None
    thresholds: Thresholds = Field(default_factory=Thresholds)
    lifecycle: list[LifecycleRule] = Field(default_factory=list)
    interests: list[InterestRule] = Field(default_factory=list)
    account: AccountModel | None = None
    # Filters of this model's own, added to the settings' (`leadscore.filters.ModelFilters`).
    filters: ModelFilters | None = None
    tests: list[ModelTest] = Field(default_factory=list)
    # Where the model was loaded from (not part of the format).
    source: str | None = Field(default=None, exclude=True)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; expected an IANA name such as "
                             "Europe/Berlin or UTC") from None
        return value

    @model_validator(mode="after")
    def _grade_needed(self) -> Model:
        if self.thresholds.mql_requires_grade is not None and not self.grades:
            raise ValueError("thresholds.mql_requires_grade needs `grades` to be defined")
        return self

    @field_validator("grades")
    @classmethod
    def _grade_letters(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return value
        for letter in value:
            if letter not in GRADE_LETTERS:
                raise ValueError(f"unknown grade {letter!r}; grades are letters "
                                 f"{', '.join(GRADE_LETTERS)} (F is the grade below all)")
        return value

    def rule_half_life(self, rule: EngagementRule | InterestRule) -> float | None:
        """The half-life in days that applies to `rule`, or None for no decay."""
        if rule.decay is False:
            return None
        if rule.decay is not None:
            return rule.decay.half_life_days
        return self.engagement.decay.half_life_days if self.engagement.decay else None

    def grade_order(self) -> list[tuple[str, float]]:
        """Grades from the best letter down, each with its minimum fit."""
        return sorted((self.grades or {}).items(), key=lambda item: item[0])
