"""The scoring plan: one model at one `as_of` as one query, its named stages in turn (sqlglot's
optimizer habit, `RULES = (qualify, …)`): each stage is a CTE reading the ones before it, the
last is the plan's own SELECT.

    ev      (events)    the events at or before as_of, one match flag per rule
    agg     (aggregate) per lead with an event: sums, latest times, bucket sums, lifecycle marks
    people  (people)    every lead of the leads table and every lead with an event
    scored  (scored)    fit, engagement, disqualify reason, stage rank, purchases
    graded  (graded)    score, grade, disqualified, mql
    final   (final)     temperature, stage, tenure, RFM: the scores' columns

`compose` runs any sequence of stages ending in `final`: `--state` puts its own `agg` (read
from the saved state) in front of `people`, `scored`, `graded` and `final`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlglot import exp

from leadscore.engine.sql.plan.aggregate import aggregate
from leadscore.engine.sql.plan.events import events
from leadscore.engine.sql.plan.final import final
from leadscore.engine.sql.plan.graded import graded
from leadscore.engine.sql.plan.people import people
from leadscore.engine.sql.plan.scope import PlanOptions, Scope
from leadscore.engine.sql.plan.scored import scored
from leadscore.errors import EngineError
from leadscore.model.compiled import CompiledModel
from leadscore.model.schema import Model


@dataclass(frozen=True)
class Stage:
    """One stage of the plan: the CTE `name` that `build` makes from the plan's scope."""

    name: str
    build: Callable[[Scope], exp.Select]


STAGES: tuple[Stage, ...] = (
    Stage("ev", events),
    Stage("agg", aggregate),
    Stage("people", people),
    Stage("scored", scored),
    Stage("graded", graded),
    Stage("final", final),
)


def compose(scope: Scope, stages: Sequence[Stage]) -> exp.Select:
    """The last stage's query, with the ones before it as its CTEs, in order."""
    *ctes, last = stages
    query = last.build(scope)
    for stage in ctes:
        query = query.with_(stage.name, as_=stage.build(scope))
    return query


def compile_plan(model: Model | CompiledModel, events_columns: Mapping[str, str],
                 leads_columns: Mapping[str, str] | None, as_of_us: int | exp.Expr, *,
                 options: PlanOptions | None = None) -> exp.Select:
    """The SQL plan scoring every lead under `model` at `as_of_us` (µs since the epoch, UTC).

    `events_columns` / `leads_columns` map the canonical columns of the events and leads
    tables (see `leadscore.io`) to their SQL types; `leads_columns` None means no leads table.
    Render with `.sql(dialect=options.dialect)` ("duckdb", the default, or "spark").
    A model with filters of its own is refused: a plan reads the events it is given, and
    only `score_many` gives each model its own filtered view (nothing scores such a model
    silently over events its filters would catch).
    """
    refuse_own_filters(model.model if isinstance(model, CompiledModel) else model)
    return compose(Scope.of(model, events_columns, leads_columns, as_of_us, options), STAGES)


def refuse_own_filters(model: Model, path: str = "this path") -> None:
    """An error for a model with filters of its own (`filters:`) on a path that cannot give
    it its own view of the events: scoring it over all of them would disagree silently."""
    if model.filters is not None:
        raise EngineError(f"model {model.name!r} has filters of its own (`filters:`): "
                          "scored by the service and `leadscore score` / score_many only, "
                          f"not yet by {path}")
