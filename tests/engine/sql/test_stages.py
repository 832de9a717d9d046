"""The plan is its named stages composed in turn; a caller (`--state`) can put its own stage in
one's place and keep the others."""

from __future__ import annotations

from sqlglot import exp

from leadscore.engine.sql.build import col, table
from leadscore.engine.sql.plan import (
    STAGES,
    PlanOptions,
    Scope,
    Stage,
    aggregate,
    compile_plan,
    compose,
)
from leadscore.model.loader import load_model

COLUMNS = {"lead_id": "VARCHAR", "ts": "BIGINT", "type": "VARCHAR", "event": "VARCHAR",
           "path": "VARCHAR", "properties.email_id": "VARCHAR"}
AS_OF = 1_782_777_600_000_000


def test_the_plan_is_its_stages_in_order() -> None:
    model = load_model("benchmarks/model-17.yaml")
    plan = compile_plan(model, COLUMNS, None, AS_OF)
    assert [cte.alias for cte in plan.args["with_"].expressions] == \
        [stage.name for stage in STAGES[:-1]] == ["ev", "agg", "people", "scored", "graded"]


def test_a_stage_replaced_keeps_the_stages_after_it() -> None:
    model = load_model("benchmarks/model-17.yaml")
    scope = Scope.of(model, COLUMNS, None, AS_OF, PlanOptions(leads_table=None))
    names = aggregate.columns(scope)
    saved = exp.select(*(col(name) for name in names)).from_(table("saved_aggregate"))
    plan = compose(scope, (Stage("agg", lambda _: saved), *STAGES[2:]))
    assert [cte.alias for cte in plan.args["with_"].expressions] == \
        ["agg", "people", "scored", "graded"]
    assert "saved_aggregate" in plan.sql(dialect="duckdb")
    whole = compile_plan(model, COLUMNS, None, AS_OF, options=PlanOptions(leads_table=None))
    for name in ("people", "scored", "graded"):
        assert _cte(plan, name) == _cte(whole, name)
    assert _final(plan) == _final(whole)


def _cte(plan: exp.Select, name: str) -> str:
    return next(c for c in plan.args["with_"].expressions if c.alias == name).sql()


def _final(plan: exp.Select) -> str:
    final = plan.copy()
    final.set("with_", None)
    return final.sql()
