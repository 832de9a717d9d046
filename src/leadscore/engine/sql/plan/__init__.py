"""The scoring plan as named stages (`stages.STAGES`), one module per stage; `compile_plan`
composes them. Built for any dialect (BIGINT µs timestamps, LIKE … ESCAPE, no float literals,
integer day arithmetic; local time and hashes from `engine.sql.dialects`)."""

from leadscore.engine.sql.plan.scope import PlanOptions, Scope
from leadscore.engine.sql.plan.scored import rule_column
from leadscore.engine.sql.plan.stages import STAGES, Stage, compile_plan, compose

__all__ = ["STAGES", "PlanOptions", "Scope", "Stage", "compile_plan", "compose", "rule_column"]
