"""Part of stage `agg`: per lead key, `g<i>`, the decayed sum of bucketed rule i (`once`/
`daily`/`weekly`/`distinct`) over its buckets' latest times.

Rows of (key, l<i> per rule: the latest time of one bucket, or NULL) come from
  - one GROUP BY (key, day) for all `daily` rules without `distinct` (they share the model's
    time zone, so one day key serves them all) and one GROUP BY (key, week) for the `weekly`
    ones: integer keys, one row per lead and day rather than per rule;
  - one GROUP BY (key, rule, bucket, distinct values) for the rules with `distinct`.
"""

from __future__ import annotations

from sqlglot import exp

from leadscore.engine.sql.build import alias, case, col, or_, sql_type, table
from leadscore.engine.sql.plan.scope import Scope
from leadscore.engine.sql.semantics import bucket_day, decay, weighted
from leadscore.model.compiled import EngagementRule


def _latest(rule: EngagementRule) -> str:
    return f"l{rule.index}"


def bucket_sums(scope: Scope, key_column: exp.Column) -> exp.Select:
    grouped = scope.kinds.bucketed
    zone, columns = scope.compiled.timezone, scope.events_columns
    ts = col("ts")
    null_time = exp.cast(exp.Null(), exp.DataType.Type.BIGINT)
    shared = {limit: [r for r in grouped if r.limit == limit and r.distinct is None]
              for limit in ("daily", "weekly")}
    rest = [r for r in grouped if r.limit not in shared or r.distinct is not None]
    parts: list[exp.Select] = []
    for limit, rules in shared.items():
        if not rules:
            continue
        bucket = bucket_day(limit, col("ts"), zone, scope.dialect)
        latest = {r.index: exp.Max(this=case([(scope.flag(r), ts.copy())])) for r in rules}
        parts.append(exp.select(key_column.copy(), *(
            alias(latest.get(r.index, null_time.copy()), _latest(r)) for r in grouped))
            .from_(table("ev")).where(or_(*(scope.flag(r) for r in rules)))
            .group_by(key_column.copy(), bucket))
    if rest:
        distinct_columns = sorted({r.distinct for r in rest
                                   if r.distinct is not None and r.distinct in columns})
        branches: list[exp.Select] = []
        for rule in rest:
            day: exp.Expr = exp.Literal.number(0)
            if rule.limit in ("daily", "weekly"):
                day = bucket_day(rule.limit, col("ts"), zone, scope.dialect)
            values = [col(c) if c == rule.distinct else exp.cast(exp.Null(), sql_type(
                columns[c])) for c in distinct_columns]
            branches.append(exp.select(
                key_column.copy(), alias(exp.Literal.number(rule.index), "r"), alias(day, "b"),
                *(alias(v, f"d{i}") for i, v in enumerate(values)), ts.copy(),
            ).from_(table("ev")).where(scope.flag(rule)))
        rows: exp.Query = branches[0]
        for branch in branches[1:]:
            rows = exp.union(rows, branch, distinct=False)
        latest_rows = exp.select(key_column.copy(), col("r"), alias(exp.Max(this=ts.copy()),
                                                                    "ts")) \
            .from_(rows.subquery("br", copy=False)) \
            .group_by(key_column.copy(), col("r"), col("b"),
                      *(col(f"d{i}") for i in range(len(distinct_columns))))
        parts.append(exp.select(key_column.copy(), *(
            alias(case([(exp.EQ(this=col("r"), expression=exp.Literal.number(r.index)),
                         ts.copy())]) if r in rest else null_time.copy(), _latest(r))
            for r in grouped)).from_(latest_rows.subquery("bl", copy=False)))
    union: exp.Query = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False)

    def worth(rule: EngagementRule) -> exp.Expr:
        last = col(_latest(rule))
        value = weighted(rule.points, decay(last.copy(), scope.as_of_us, rule.half_life_days))
        return exp.Sum(this=case([(exp.not_(exp.Is(this=last, expression=exp.Null())),
                                   exp.cast(value, scope.exact.copy()))]))

    return exp.select(key_column.copy(), *(alias(worth(r), f"g{r.index}") for r in grouped)) \
        .from_(union.subquery("bu", copy=False)).group_by(key_column.copy())
