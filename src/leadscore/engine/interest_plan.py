"""Interests in the batch engine: one SQL query per model (sqlglot expressions, portable like
the scoring plan) giving each lead's ranked topics, then the `interests` column of the scores.

    per interest rule   the matching events at or before as_of with their topic; the most
                        recent event per (lead, topic, bucket) for `once`/`daily`/`weekly`/
                        `distinct`; summed per (lead, topic), decayed, capped
    weights             per (lead, topic): the sum over the rules
    ranked              weight > 0, ROW_NUMBER by weight (desc) then topic, the top N
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
from sqlglot import exp

from leadscore.engine.compiler import (
    _as,
    _bucket_keys,
    _case,
    _decay,
    _double,
    _matches,
    _table,
    _weighted,
    col,
)
from leadscore.engine.sqlconditions import STRING, and_, column_kind, number, text
from leadscore.model.interests import PROFILE_SIZE, InterestRule, compile_interests
from leadscore.model.schema import Model

INTEREST_TYPE = pa.list_(pa.struct([("topic", pa.string()), ("weight", pa.float64())]))


def _topic(interest: InterestRule, columns: Mapping[str, str]) -> exp.Expr | None:
    """SQL for `Topic.of(event)`, or None where the rule can never give a topic."""
    topic = interest.topic
    if topic.path is None:
        return text(topic.text)
    sql_type = columns.get(topic.path)
    if sql_type is None or column_kind(sql_type) != STRING:
        return None     # no column, or not text: never a non-empty string
    value: exp.Expr = col(topic.path)
    if topic.prefix:
        value = exp.DPipe(this=text(topic.prefix), expression=value, safe=True)
    if topic.suffix:
        value = exp.DPipe(this=value, expression=text(topic.suffix), safe=True)
    return value


def _rule_query(interest: InterestRule, columns: Mapping[str, str], as_of_us: int,
                events_table: str, zone: str, dialect: str) -> exp.Select | None:
    topic = _topic(interest, columns)
    if topic is None:
        return None
    rule = interest.rule
    ts = col("ts")
    present: exp.Expr = exp.true()
    if interest.topic.path is not None:
        value = col(interest.topic.path)
        present = and_(exp.not_(exp.Is(this=value, expression=exp.Null())),
                       exp.NEQ(this=value.copy(), expression=text("")))
    keys = _bucket_keys(rule, columns, zone, dialect)
    base = exp.select(col("lead_id"), ts.copy(), _as(topic, "topic"),
                      *(_as(k, f"k{i}") for i, k in enumerate(keys))) \
        .from_(_table(events_table)) \
        .where(and_(exp.LTE(this=ts.copy(), expression=exp.Literal.number(as_of_us)),
                    _matches(rule.matcher, columns), present))
    source: exp.Expr = base.subquery("e", copy=False)
    if rule.bucketed:
        latest = exp.select(col("lead_id"), col("topic"), _as(exp.Max(this=ts.copy()), "ts")) \
            .from_(source).group_by(col("lead_id"), col("topic"),
                                    *(col(f"k{i}") for i in range(len(keys))))
        source = latest.subquery("b", copy=False)
    total: exp.Expr = exp.Sum(this=_weighted(rule.points, _decay(ts.copy(), as_of_us,
                                                                    rule.half_life_days)))
    if rule.cap is not None:
        cap = _double(number(rule.cap))
        total = _case([(exp.GT(this=total, expression=cap), cap.copy()),
                       (exp.LT(this=total.copy(), expression=exp.Neg(this=cap.copy())),
                        exp.Neg(this=cap.copy()))], total.copy())
    return exp.select(col("lead_id"), col("topic"), _as(total, "w")).from_(source) \
        .group_by(col("lead_id"), col("topic"))


def compile_interest_plan(model: Model, events_columns: Mapping[str, str], as_of_us: int, *,
                          events_table: str = "events", dialect: str = "duckdb",
                          size: int | None = PROFILE_SIZE) -> exp.Select | None:
    """`lead_id, topic, weight, rank` for each lead's top `size` topics (weight > 0), or None
    where the model has no interest rule that can match these events."""
    parts = [q for interest in compile_interests(model)
             if (q := _rule_query(interest, events_columns, as_of_us, events_table,
                                  model.timezone, dialect)) is not None]
    if not parts:
        return None
    union: exp.Query = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False)
    weights = exp.select(col("lead_id"), col("topic"), _as(exp.Sum(this=col("w")), "weight")) \
        .from_(union.subquery("r", copy=False)).group_by(col("lead_id"), col("topic"))
    window = exp.Window(this=exp.RowNumber(), partition_by=[col("lead_id")], order=exp.Order(
        expressions=[exp.Ordered(this=col("weight"), desc=True),
                     exp.Ordered(this=col("topic"), desc=False)]))
    ranked = exp.select(col("lead_id"), col("topic"), col("weight"), _as(window, "rank")) \
        .from_(weights.subquery("w", copy=False)) \
        .where(exp.GT(this=col("weight"), expression=_double(exp.Literal.number(0))))
    plan = exp.select(col("lead_id"), col("topic"), col("weight"), col("rank")) \
        .from_(ranked.subquery("k", copy=False))
    if size is not None:
        plan = plan.where(exp.LTE(this=col("rank"), expression=exp.Literal.number(size)))
    return plan


def profiles(long: pa.Table) -> dict[str, list[dict[str, Any]]]:
    """lead_id → [{topic, weight}, …] in rank order, from the plan's rows."""
    out: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for lead_id, topic, weight, rank in zip(*(long.column(c).to_pylist() for c in
                                             ("lead_id", "topic", "weight", "rank")),
                                            strict=True):
        out.setdefault(lead_id, []).append((rank, {"topic": topic, "weight": weight}))
    return {lead: [item for _, item in sorted(items, key=lambda i: i[0])]
            for lead, items in out.items()}


def with_interests(con: Any, model: Model, events_table: str,
                   events_columns: Mapping[str, str], as_of_us: int, scores: pa.Table
                   ) -> pa.Table:
    """`scores` (one model's rows) with its `interests` column appended (DuckDB)."""
    plan = compile_interest_plan(model, events_columns, as_of_us, events_table=events_table)
    found: dict[str, list[dict[str, Any]]] = {}
    if plan is not None and scores.num_rows:
        found = profiles(con.sql(plan.sql(dialect="duckdb")).to_arrow_table())
    lead_ids = scores.column("lead_id").to_pylist()
    column = pa.array([found.get(lead_id, []) for lead_id in lead_ids], INTEREST_TYPE)
    return scores.append_column(pa.field("interests", INTEREST_TYPE), column)


def output_schema(score_schema: pa.Schema) -> pa.Schema:
    """The scores table's schema: the plan's columns, then `interests`."""
    return score_schema.append(pa.field("interests", INTEREST_TYPE))
