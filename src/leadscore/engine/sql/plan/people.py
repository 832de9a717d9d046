"""Stage `people`: every lead of the leads table and every lead with an event — the leads
table FULL OUTER JOIN agg on lead_id (agg alone without a leads table)."""

from __future__ import annotations

from sqlglot import exp

from leadscore.engine.sql.build import alias, coalesce, col, table
from leadscore.engine.sql.plan import aggregate
from leadscore.engine.sql.plan.scope import Scope


def people(scope: Scope) -> exp.Select:
    if scope.leads_table is None:
        return exp.select(exp.Star()).from_(table("agg"))
    return exp.select(
        alias(coalesce(col("lead_id", "l"), col("lead_id", "a")), "lead_id"),
        *(col(c, "l") for c in scope.lead_columns if c != "lead_id"),
        *(col(c, "a") for c in aggregate.columns(scope)[1:]),
    ).from_(table(scope.leads_table, "l")).join(
        table("agg", "a"), on=exp.EQ(this=col("lead_id", "l"),
                                           expression=col("lead_id", "a")),
        join_type="FULL OUTER")
