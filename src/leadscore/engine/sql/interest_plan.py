"""Interests as SQL: one query per model (sqlglot expressions, portable like the scoring plan)
giving each lead's ranked topics.

    iv        one scan of the events at or before as_of: per interest rule i its topic `t<i>`
              (NULL where the event does not match or gives no topic)
    counted   per rule, the events that count: all of them, or for `once`/`daily`/`weekly`/
              `distinct` the most recent per (lead, topic, bucket)
    totals    per (lead, rule, topic): the decayed points, summed as DECIMAL
    ranked    capped per rule, summed per (lead, topic) as DECIMAL (exact, so the same in any
              order and on any engine), weight ≥ MIN_WEIGHT, ROW_NUMBER by weight (desc), topic

`--state` (engine.batch.state) keeps `totals`' ingredients instead and ranks with `ranked_plan`.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from leadscore.engine.sql.build import (
    alias,
    and_,
    case,
    col,
    double,
    number,
    or_,
    sql_type,
    table,
    text,
)
from leadscore.engine.sql.conditions import STRING, column_kind
from leadscore.engine.sql.dialects import Dialect
from leadscore.engine.sql.semantics import bucket_day, decay, exact_type, matches, weighted
from leadscore.model.interests import MIN_WEIGHT, PROFILE_SIZE, InterestRule, compile_interests
from leadscore.model.schema import Model


def _topic(interest: InterestRule, columns: Mapping[str, str]) -> exp.Expr | None:
    """SQL for `Topic.of(event)`, or None where the rule can never give a topic."""
    topic = interest.topic
    if topic.path is None:
        return text(topic.text)
    declared = columns.get(topic.path)
    if declared is None or column_kind(declared) != STRING:
        return None     # no column, or not text: never a non-empty string
    value: exp.Expr = col(topic.path)
    if topic.prefix:
        value = exp.DPipe(this=text(topic.prefix), expression=value, safe=True)
    if topic.suffix:
        value = exp.DPipe(this=value, expression=text(topic.suffix), safe=True)
    return value


def topic_flags(interests: tuple[InterestRule, ...], columns: Mapping[str, str]
                ) -> list[tuple[InterestRule, exp.Expr]]:
    """Per interest rule that can match these columns, its topic column `t<i>`: the topic
    where the event matches and gives one, else NULL."""
    out = []
    for interest in interests:
        topic = _topic(interest, columns)
        if topic is None:
            continue
        matched = matches(interest.rule.matcher, columns)
        if interest.topic.path is not None:
            value = col(interest.topic.path)
            matched = and_(matched, exp.not_(exp.Is(this=value, expression=exp.Null())),
                           exp.NEQ(this=value.copy(), expression=text("")))
        out.append((interest, alias(case([(matched, topic)]), f"t{interest.index}")))
    return out


def distinct_columns(interests: tuple[InterestRule, ...], columns: Mapping[str, str]
                     ) -> list[str]:
    """The event columns the bucketed interest rules group by."""
    return sorted({i.rule.distinct for i in interests
                   if i.rule.distinct is not None and i.rule.distinct in columns})


def counted_rows(interests: list[InterestRule], source: str, columns: Mapping[str, str],
                 zone: str, dialect: str, distinct: list[str]) -> tuple[exp.Query | None,
                                                                       exp.Query | None]:
    """From `source` (lead_id, ts, t<i>, the distinct columns): the rows of every-event rules
    (`lead_id, r, topic, ts`) and the bucket rows of bucketed ones (`…, b, d<j>`)."""
    each: exp.Query | None = None
    buckets: exp.Query | None = None
    for interest in interests:
        rule = interest.rule
        head = [col("lead_id"), alias(exp.Literal.number(interest.index), "r"),
                alias(col(f"t{interest.index}"), "topic"), col("ts")]
        where = exp.not_(exp.Is(this=col(f"t{interest.index}"), expression=exp.Null()))
        if not rule.bucketed:
            branch = exp.select(*head).from_(table(source)).where(where)
            each = branch if each is None else exp.union(each, branch, distinct=False)
            continue
        day: exp.Expr = exp.Literal.number(0)
        if rule.limit in ("daily", "weekly"):
            day = bucket_day(rule.limit, col("ts"), zone, Dialect.get_or_raise(dialect))
        values = [col(c) if c == rule.distinct else exp.cast(exp.Null(), sql_type(columns[c]))
                  for c in distinct]
        branch = exp.select(*head, alias(exp.cast(day, exp.DataType.Type.BIGINT), "b"),
                            *(alias(v, f"d{j}") for j, v in enumerate(values))) \
            .from_(table(source)).where(where)
        buckets = branch if buckets is None else exp.union(buckets, branch, distinct=False)
    return each, buckets


def _points_at(interests: list[InterestRule], ts: exp.Expr, as_of_us: int) -> exp.Expr:
    """Per row of rule `r` at time `ts`: the rule's points decayed to as_of."""
    return case([(exp.EQ(this=col("r"), expression=exp.Literal.number(i.index)),
                   weighted(i.rule.points, decay(ts.copy(), as_of_us, i.rule.half_life_days)))
                  for i in interests])


def exact_interest_type(interests: tuple[InterestRule, ...] | list[InterestRule]
                        ) -> exp.DataType:
    return exact_type(i.rule.points for i in interests)


def totals_plan(interests: list[InterestRule], each: exp.Query | None,
                buckets: exp.Query | None, as_of_us: int, distinct: list[str]) -> exp.Select:
    """`lead_id, r, topic, w`: per (lead, rule, topic) the decayed points of the events that
    count (the latest per bucket for bucketed rules), summed as DECIMAL."""
    parts: list[exp.Query] = []
    if buckets is not None:
        parts.append(exp.select(col("lead_id"), col("r"), col("topic"),
                                alias(exp.Max(this=col("ts")), "ts"))
                     .from_(buckets.subquery("bk", copy=False))
                     .group_by(col("lead_id"), col("r"), col("topic"), col("b"),
                               *(col(f"d{j}") for j in range(len(distinct)))))
    if each is not None:
        parts.append(each)
    rows = parts[0]
    for part in parts[1:]:
        rows = exp.union(rows, part, distinct=False)
    exact = exact_interest_type(interests)
    return exp.select(col("lead_id"), col("r"), col("topic"), alias(exp.Sum(this=exp.cast(
        _points_at(interests, col("ts"), as_of_us), exact)), "w")) \
        .from_(rows.subquery("c", copy=False)).group_by(col("lead_id"), col("r"), col("topic"))


def ranked_plan(interests: tuple[InterestRule, ...] | list[InterestRule], totals: exp.Query,
                size: int | None = PROFILE_SIZE) -> exp.Select:
    """`lead_id, topic, weight, rank` from per (lead, rule, topic) totals `w`: each capped by
    its rule, summed per topic exactly, the top `size` topics with weight ≥ MIN_WEIGHT."""
    total = double(col("w"))
    capped_cases = []
    for interest in interests:
        if interest.rule.cap is None:
            continue
        cap = double(number(interest.rule.cap))
        is_rule = exp.EQ(this=col("r"), expression=exp.Literal.number(interest.index))
        capped_cases += [(and_(is_rule, exp.GT(this=total.copy(), expression=cap)), cap.copy()),
                         (and_(is_rule.copy(), exp.LT(this=total.copy(),
                                                      expression=exp.Neg(this=cap.copy()))),
                          exp.Neg(this=cap.copy()))]
    capped = case(capped_cases, total.copy()) if capped_cases else total
    # Summed as DECIMAL(38, p): the same in any order (a sum of doubles is not).
    places = exact_interest_type(interests).expressions[1].copy()
    wide = exp.DataType(this=exp.DataType.Type.DECIMAL, expressions=[
        exp.DataTypeParam(this=exp.Literal.number(38)), places])
    weights = exp.select(col("lead_id"), col("topic"), alias(double(exp.Sum(this=exp.cast(
        capped, wide))), "weight")) \
        .from_(totals.subquery("t", copy=False)).group_by(col("lead_id"), col("topic"))
    window = exp.Window(this=exp.RowNumber(), partition_by=[col("lead_id")], order=exp.Order(
        expressions=[exp.Ordered(this=col("weight"), desc=True),
                     exp.Ordered(this=col("topic"), desc=False)]))
    ranked = exp.select(col("lead_id"), col("topic"), col("weight"), alias(window, "rank")) \
        .from_(weights.subquery("w", copy=False)) \
        .where(exp.GTE(this=col("weight"), expression=double(exp.Literal.number(MIN_WEIGHT))))
    plan = exp.select(col("lead_id"), col("topic"), col("weight"), col("rank")) \
        .from_(ranked.subquery("k", copy=False))
    if size is not None:
        plan = plan.where(exp.LTE(this=col("rank"), expression=exp.Literal.number(size)))
    return plan


def compile_interest_plan(model: Model, events_columns: Mapping[str, str], as_of_us: int, *,
                          events_table: str = "events", dialect: str = "duckdb",
                          size: int | None = PROFILE_SIZE) -> exp.Select | None:
    """`lead_id, topic, weight, rank` for each lead's top `size` topics (weight ≥ MIN_WEIGHT),
    or None where the model has no interest rule that can match these events. The events are read
    once, in CTE `iv` (DuckDB stages it, see `with_interests`)."""
    flags = topic_flags(compile_interests(model), events_columns)
    if not flags:
        return None
    interests = [interest for interest, _ in flags]
    distinct = distinct_columns(tuple(interests), events_columns)
    ts = col("ts")
    iv = exp.select(col("lead_id"), ts.copy(), *(col(c) for c in distinct),
                    *(flag for _, flag in flags)) \
        .from_(table(events_table)) \
        .where(and_(exp.LTE(this=ts.copy(), expression=exp.Literal.number(as_of_us)),
                    or_(*(matches(i.rule.matcher, events_columns) for i in interests))))
    each, buckets = counted_rows(interests, "iv", events_columns, model.timezone, dialect,
                                 distinct)
    plan = ranked_plan(interests, totals_plan(interests, each, buckets, as_of_us, distinct),
                       size)
    return plan.with_("iv", as_=iv)
