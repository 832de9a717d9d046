"""Stage `scored`: per lead of `people` that the model `applies_to`, its fit (fit rules on its
traits), engagement (agg's sums, capped rules clamped, `once` rules decayed from their latest
time), disqualify reason, the highest stage its events and traits reach (`rank`) and its
purchases; with `PlanOptions.rule_columns`, each rule's contribution (`rule_column`)."""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from leadscore.engine.sql.ages import age_days
from leadscore.engine.sql.build import (
    alias,
    and_,
    bigint,
    case,
    coalesce,
    col,
    double,
    greatest,
    number,
    or_,
    sum_of,
    table,
    text,
)
from leadscore.engine.sql.conditions import DOUBLE, to_sql
from leadscore.engine.sql.plan.scope import Scope
from leadscore.engine.sql.semantics import DAY_SHIFT, STAGE_BITS, clamp, decay, weighted
from leadscore.model import conditions as cond
from leadscore.timeutil import US_PER_DAY


def rule_column(kind: str, index: int) -> str:
    """The plan's column with one rule's contribution when `PlanOptions.rule_columns`:
    kind "engagement" (points after decay, limits and cap), "fit" (points) or "disqualify"
    (whether the fit rule's condition holds) for the rule at `index` of its section."""
    return {"engagement": "ep", "fit": "fp", "disqualify": "fq"}[kind] + str(index)


def rule_columns(scope: Scope) -> list[str]:
    """The rule columns `scored` outputs with `PlanOptions.rule_columns`, in its order."""
    kinds = scope.kinds
    fit = [rule_column(kind, r.index) for r in scope.compiled.fit
           for kind in ("fit", "disqualify")]
    engaged = [*kinds.capped, *kinds.bucketed, *kinds.latest_only, *kinds.uncapped]
    return [*fit, *(rule_column("engagement", r.index) for r in engaged)]


def age_condition(scope: Scope, path: str) -> Callable[[cond.Condition], exp.Expr]:
    """SQL for an `age_of` rule's bands: they read the age in days of the trait at `path`
    as of the plan's `as_of` (`engine.sql.ages`)."""
    sql_type = scope.lead_columns.get(path)
    age = None if sql_type is None else age_days(
        col(path), sql_type, scope.as_of_us, scope.dialect)

    def band(condition: cond.Condition) -> exp.Expr:
        return to_sql(condition, scope.lead_columns, values={path: (age, DOUBLE)})
    return band


def scored(scope: Scope) -> exp.Select:
    compiled, kinds = scope.compiled, scope.kinds

    def lead_condition(condition: cond.Condition) -> exp.Expr:
        return to_sql(condition, scope.lead_columns)

    fit_terms: list[exp.Expr] = []
    disqualify: list[tuple[exp.Expr, exp.Expr]] = []
    per_rule: list[exp.Expr] = []     # with `rule_columns`, in `rule_columns(scope)`'s order
    for fit_rule in compiled.fit:
        if fit_rule.bands:
            band_sql = lead_condition if fit_rule.age_of is None else age_condition(
                scope, fit_rule.age_of)
            whens = [(band_sql(band), double(number(points)))
                     for band, points in fit_rule.bands]
            matched = or_(*(w for w, _ in whens))
            fit_terms.append(case(whens, double(exp.Literal.number(0))))
        else:
            assert fit_rule.when is not None
            matched = lead_condition(fit_rule.when)
            fit_terms.append(case([(matched, double(number(fit_rule.points)))],
                                  double(exp.Literal.number(0))))
        if fit_rule.disqualify is not None:
            disqualify.append((matched.copy(), text(fit_rule.disqualify)))
        per_rule += [alias(fit_terms[-1].copy(), rule_column("fit", fit_rule.index)),
                     alias(coalesce(matched.copy(), exp.false()),
                           rule_column("disqualify", fit_rule.index))]
    fit = sum_of(fit_terms) if fit_terms else double(exp.Literal.number(0))
    zero = double(exp.Literal.number(0))
    engagement = coalesce(double(col("v")), zero.copy()) if kinds.by_half_life \
        else zero.copy()
    clamped = []
    for rule in [*kinds.capped, *kinds.bucketed]:
        name = f"c{rule.index}" if rule in kinds.capped else f"g{rule.index}"
        total = coalesce(double(col(name)), zero.copy())
        clamped.append(total if rule.cap is None else clamp(total, rule.cap))
        per_rule.append(alias(clamped[-1].copy(), rule_column("engagement", rule.index)))
    for rule in kinds.latest_only:
        last_seen = col(f"o{rule.index}")
        worth = weighted(rule.points, decay(last_seen.copy(), scope.as_of_us,
                                            rule.half_life_days))
        if rule.cap is not None:
            worth = clamp(worth, rule.cap)
        clamped.append(case([(exp.not_(exp.Is(this=last_seen.copy(), expression=exp.Null())),
                              worth)], double(exp.Literal.number(0))))
        per_rule.append(alias(clamped[-1].copy(), rule_column("engagement", rule.index)))
    per_rule += [alias(coalesce(double(col(f"e{r.index}")), zero.copy()),
                       rule_column("engagement", r.index)) for r in kinds.uncapped]
    if scope.program_points is not None:
        clamped.append(coalesce(double(col("pp")), zero.copy()))
    engagement = sum_of([engagement, *clamped])

    ranks: list[exp.Expr] = [exp.Literal.number(0)]
    has_back = bool(kinds.backs) or scope.program_stage is not None
    if has_back or kinds.forward_ranks:
        back_time = exp.Sub(this=exp.IntDiv(this=col("back_key"),
                                            expression=exp.Literal.number(STAGE_BITS)),
                            expression=exp.Literal.number(DAY_SHIFT * US_PER_DAY))
        if has_back:
            ranks.append(coalesce(exp.Sub(
                this=exp.Literal.number(STAGE_BITS - 1),
                expression=exp.Mod(this=col("back_key"),
                                   expression=exp.Literal.number(STAGE_BITS))),
                exp.Literal.number(0)))
        for rank in kinds.forward_ranks:
            seen = exp.not_(exp.Is(this=col(f"f{rank}"), expression=exp.Null()))
            after = seen if not has_back else and_(seen, or_(
                exp.Is(this=col("back_key"), expression=exp.Null()),
                exp.GT(this=col(f"f{rank}"), expression=back_time.copy())))
            ranks.append(case([(after, exp.Literal.number(rank))], exp.Literal.number(0)))
    for stage in compiled.stages:
        if stage.when is not None:
            ranks.append(case([(lead_condition(stage.when), exp.Literal.number(stage.rank))],
                              exp.Literal.number(0)))
    bought = bool(kinds.customers)
    query = exp.select(
        col("lead_id"),
        alias(fit, "fit"),
        alias(engagement, "engagement"),
        alias(case(disqualify) if disqualify else exp.cast(exp.Null(), "VARCHAR"),
              "disqualify_reason"),
        alias(greatest(ranks), "rank"),
        alias(bigint(coalesce(col("buys"), exp.Literal.number(0))) if bought
              else bigint(exp.Literal.number(0)), "purchases"),
        alias(col("first_buy") if bought else bigint(exp.Null()), "customer_since"),
        alias(col("last_buy") if bought else bigint(exp.Null()), "last_buy"),
        alias(col("spend") if bought else double(exp.Null()), "spend"),
        *([col("k")] if scope.lead_key(col("lead_id")) is not None else []),
        *(per_rule if scope.options.rule_columns else []),
    ).from_(table("people"))
    if compiled.applies_to is not None:
        query = query.where(lead_condition(compiled.applies_to))
    return query
