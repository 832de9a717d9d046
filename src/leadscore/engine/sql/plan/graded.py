"""Stage `graded`: scored with its score (fit + engagement), grade, disqualified and mql."""

from __future__ import annotations

from sqlglot import exp

from leadscore.engine.sql.build import alias, and_, case, coalesce, col, double, number, table, text
from leadscore.engine.sql.plan.scope import Scope


def graded(scope: Scope) -> exp.Select:
    compiled = scope.compiled
    thresholds = compiled.model.thresholds
    fit, engagement = col("fit"), col("engagement")
    score = exp.Add(this=fit.copy(), expression=engagement.copy())
    grade: exp.Expr = exp.cast(exp.Null(), "VARCHAR")
    if compiled.grades:
        grade = case([(exp.GTE(this=fit.copy(), expression=double(number(minimum))),
                       text(letter)) for letter, minimum in compiled.grades], text("F"))
    disqualified = exp.not_(exp.Is(this=col("disqualify_reason"), expression=exp.Null()))
    mql: exp.Expr = exp.false()
    if thresholds.mql is not None:
        mql = and_(exp.Is(this=col("disqualify_reason"), expression=exp.Null()),
                   exp.GTE(this=exp.Paren(this=score.copy()),
                           expression=double(number(thresholds.mql))))
        required = thresholds.mql_requires_grade
        if required is not None:
            mql = and_(mql, coalesce(exp.LTE(this=col("grade"), expression=text(required)),
                                     exp.false()))
    query = exp.select(
        exp.Star(), alias(double(score), "score"), alias(disqualified, "disqualified"),
    ).from_(exp.select(exp.Star(), alias(grade, "grade")).from_(table("scored"))
            .subquery("s", copy=False))
    return exp.select(exp.Star(), alias(mql, "mql")).from_(query.subquery("g", copy=False))
