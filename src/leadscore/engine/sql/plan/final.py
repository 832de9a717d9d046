"""Stage `final` (the plan's own SELECT): the scores' columns (`scores.OUTPUT_COLUMNS`) —
temperature, stage, customer tenure and recency/frequency/monetary added to graded's."""

from __future__ import annotations

from sqlglot import exp

from leadscore.engine.sql.build import (
    alias,
    bigint,
    case,
    coalesce,
    col,
    double,
    greatest,
    instant,
    number,
    table,
    text,
)
from leadscore.engine.sql.plan.scope import Scope
from leadscore.engine.sql.plan.scored import rule_columns
from leadscore.model.compiled import MQL_RANK
from leadscore.model.schema import STAGES
from leadscore.timeutil import US_PER_DAY


def final(scope: Scope) -> exp.Select:
    compiled, options = scope.compiled, scope.options
    temperatures = compiled.model.temperature
    as_of = instant(scope.as_of_us)
    engagement = col("engagement")
    temperature: exp.Expr = case([(col("disqualified"), text("dead"))],
                                 exp.cast(exp.Null(), "VARCHAR"))
    if temperatures is not None:
        temperature = case([
            (col("disqualified"), text("dead")),
            (exp.GTE(this=engagement.copy(), expression=double(number(temperatures.hot))),
             text("hot")),
            (exp.GTE(this=engagement.copy(), expression=double(number(temperatures.warm))),
             text("warm"))], text("cold"))
    stage_rank = greatest([col("rank"), case([(col("mql"), exp.Literal.number(MQL_RANK))],
                                             exp.Literal.number(0))])
    stage_name = exp.Case(this=stage_rank)
    for i, name in enumerate(STAGES):
        stage_name = stage_name.when(exp.Literal.number(i), text(name))
    customer = exp.not_(exp.Is(this=col("customer_since"), expression=exp.Null()))
    tenure = case([(customer, exp.Div(this=double(exp.Paren(this=exp.Sub(
        this=as_of.copy(), expression=col("customer_since")))),
        expression=double(exp.Literal.number(US_PER_DAY))))], double(exp.Null()))
    query = exp.select(
        col("lead_id"),
        alias(text(compiled.name), "model"),
        alias(double(col("fit")), "fit"),
        alias(double(engagement.copy()), "engagement"),
        col("score"),
        col("grade"),
        alias(temperature, "temperature"),
        alias(stage_name, "stage"),
        col("mql"),
        col("disqualified"),
        col("disqualify_reason"),
        col("purchases"),
        col("customer_since"),
        alias(tenure, "tenure_days"),
        # recency, frequency, monetary: null for a lead that never bought, as tenure
        alias(exp.Div(this=double(exp.Paren(this=exp.Sub(this=as_of.copy(),
                                                         expression=col("last_buy")))),
                      expression=double(exp.Literal.number(US_PER_DAY))), "recency_days"),
        alias(case([(exp.GT(this=col("purchases"), expression=exp.Literal.number(0)),
                     col("purchases"))], bigint(exp.Null())), "frequency"),
        alias(case([(customer.copy(), coalesce(double(col("spend")),
                                               double(exp.Literal.number(0))))],
                   double(exp.Null())), "monetary"),
        alias(bigint(as_of.copy()), "as_of"),
        *([col("k")] if scope.lead_key(col("lead_id")) is not None else []),
        *(col(c) for c in (rule_columns(scope) if options.rule_columns else [])),
    ).from_(table("graded"))
    return query.order_by(col("lead_id")) if options.order else query
