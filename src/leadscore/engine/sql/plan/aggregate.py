"""Stage `agg`: one row per lead with an event — one GROUP BY over ev for what every event
adds to (the uncapped rules' decayed sum `v` per half-life, each capped rule's sum `c<i>`, the
latest time `o<i>` of `once` rules, program points `pp`, lifecycle marks `back_key`/`f<rank>`,
purchases), LEFT JOIN the bucketed rules' sums `g<i>` (`plan.buckets`).

Points are summed as DECIMAL, not DOUBLE: a parallel floating-point sum depends on the order
rows arrive in (results differed run to run in the last digits); a sum of decimals (integers
underneath) is exact in any order. Each term is rounded to `exact_type`'s places (≤ 1e-12 for
points below 100k), far inside the engines' 1e-9 agreement.
"""

from __future__ import annotations

from sqlglot import exp

from leadscore.engine.sql.build import alias, case, col, double, number, or_, sum_of, table
from leadscore.engine.sql.plan.buckets import bucket_sums
from leadscore.engine.sql.plan.scope import Scope
from leadscore.engine.sql.program_events import POINTS_TYPE
from leadscore.engine.sql.purchases import purchase_value
from leadscore.engine.sql.semantics import back_key, decay, weighted


def aggregate(scope: Scope) -> exp.Select:
    kinds = scope.kinds
    lead_key = scope.lead_key(col("lead_id"))
    aggregates = _per_lead(scope)
    per_lead = exp.select(*aggregates).from_(table("ev")).group_by(col("lead_id"))
    if not kinds.bucketed:
        return per_lead
    key_column = col("k") if lead_key is not None else col("lead_id")
    agg = exp.select(col("lead_id", "p"), *(col(c, "p") for c in _lead_values(aggregates)),
                     *(col(f"g{r.index}", "q") for r in kinds.bucketed)) \
        .from_(per_lead.subquery("p", copy=False)) \
        .join(bucket_sums(scope, key_column).subquery("q", copy=False), on=exp.EQ(
            this=col(key_column.name, "p"), expression=col(key_column.name, "q")),
            join_type="LEFT")
    if lead_key is not None:
        agg = agg.select(col("k", "p"), copy=False)
    return agg


def columns(scope: Scope) -> list[str]:
    """The names of agg's columns, `lead_id` first and the lead key `k` (if any) last."""
    names = ["lead_id", *_lead_values(_per_lead(scope)),
             *(f"g{r.index}" for r in scope.kinds.bucketed)]
    return [*names, "k"] if scope.lead_key(col("lead_id")) is not None else names


def _lead_values(aggregates: list[exp.Expr]) -> list[str]:
    return [c.alias_or_name for c in aggregates[1:] if c.alias_or_name != "k"]


def _per_lead(scope: Scope) -> list[exp.Expr]:
    """The per-lead aggregates over ev (lead_id first)."""
    compiled, kinds, as_of_us, exact = scope.compiled, scope.kinds, scope.as_of_us, scope.exact
    ts = col("ts")

    def exact_sum(value: exp.Expr) -> exp.Expr:
        return exp.Sum(this=exp.cast(value, exact.copy()))

    # Uncapped rules where every event counts: one number per event, decay computed once per
    # half-life.
    parts: list[exp.Expr] = []
    for half_life, rules in kinds.by_half_life.items():
        points = [(scope.flag(r), double(number(r.points))) for r in rules]
        total = case(points, double(exp.Literal.number(0))) if len(rules) == 1 else \
            sum_of([case([p], double(exp.Literal.number(0))) for p in points])
        weight = decay(ts.copy(), as_of_us, half_life)
        parts.append(total if weight is None else exp.Mul(this=exp.Paren(this=total),
                                                          expression=weight))
    aggregates: list[exp.Expr] = [col("lead_id")]
    key = scope.lead_key(col("lead_id"))
    if key is not None:
        aggregates.append(alias(key, "k"))
    if parts:
        # Only the events some such rule matched are weighed (most events match none).
        matched = or_(*(scope.flag(r) for rules in kinds.by_half_life.values() for r in rules))
        aggregates.append(alias(exp.Sum(this=case([(matched, exp.cast(
            sum_of(parts), exact.copy()))])), "v"))
    for r in kinds.capped:
        aggregates.append(alias(exact_sum(case([(scope.flag(r), weighted(r.points, decay(
            ts.copy(), as_of_us, r.half_life_days)))])), f"c{r.index}"))
    # `once` without `distinct`: only the latest matching time per lead matters, a MAX here.
    aggregates += [alias(exp.Max(this=case([(scope.flag(r), ts.copy())])), f"o{r.index}")
                   for r in kinds.latest_only]
    if scope.options.rule_columns:   # the uncapped every-event rules, each on its own
        aggregates += [alias(exact_sum(case([(scope.flag(r), weighted(r.points, decay(
            ts.copy(), as_of_us, r.half_life_days)))])), f"e{r.index}")
            for r in kinds.uncapped]
    if scope.program_points is not None:   # points a program added: every event counts
        weight = decay(ts.copy(), as_of_us, compiled.program_half_life)
        added = col("pts") if weight is None else exp.Mul(this=col("pts"), expression=weight)
        aggregates.append(alias(exp.Sum(this=exp.cast(added, POINTS_TYPE)), "pp"))
    if kinds.backs or scope.program_stage is not None:
        aggregates.append(alias(exp.Max(this=back_key(
            ts.copy(), kinds.backs, scope.program_stage is not None, scope.stage_flag)),
            "back_key"))
    for rank in kinds.forward_ranks:
        hits = [s for s in kinds.marking if not s.back and s.rank == rank]
        aggregates.append(alias(exp.Max(this=case([(scope.stage_hit(hits), ts.copy())])),
                                f"f{rank}"))
    if kinds.customers:
        bought = kinds.customers
        aggregates += [
            alias(exp.Sum(this=case([(scope.stage_hit(bought), exp.Literal.number(1))],
                                    exp.Literal.number(0))), "buys"),
            alias(exp.Min(this=case([(scope.stage_hit(bought), ts.copy())])), "first_buy"),
            alias(exp.Max(this=case([(scope.stage_hit(bought), ts.copy())])), "last_buy"),
            alias(exp.Sum(this=case([(scope.stage_hit(bought),
                                      purchase_value(scope.events_columns))])), "spend")]
    return aggregates
