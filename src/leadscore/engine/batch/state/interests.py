"""Interests under `--state` (`state.store`): per lead, interest rule and topic, the state the
incremental engine keeps too (engine.incremental.interests), as two DuckDB tables:

    sums     lead_id, r, topic, w   Σ points·2^((t − ref)/half-life) over the events of rules
                                    where every event counts, relative to the state's `ref`;
                                    a later run rescales it by 2^((ref − T)/half-life), exactly
                                    as the engagement sums
    buckets  lead_id, r, topic, b, d, ts   the latest event per bucket (day/week `b`, distinct
                                    value `d` as text) of `once`/`daily`/`weekly`/`distinct`
                                    rules; never closed, so an event folds in exactly whenever
                                    it arrives

Scores: each (lead, rule, topic) total = its rescaled sum + its buckets' decayed points, then
`interest_plan.ranked_plan` (cap, weight per topic, rank) as in a full re-score. The SQL is
built from `engine.sql.semantics` and `engine.sql.interest_plan`, as the plan's, and run by the
state's runner (`state.runner`: DuckDB or Spark).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlglot import exp

from leadscore.engine.batch.schema import profiles
from leadscore.engine.batch.state.runner import Runner
from leadscore.engine.sql.build import alias, bigint, col, number, table
from leadscore.engine.sql.interest_plan import ranked_plan, topic_flags
from leadscore.engine.sql.semantics import bucket_day, decay, weighted
from leadscore.model.interests import InterestRule, compile_interests
from leadscore.model.schema import Model

SUMS_FILE, BUCKETS_FILE = "interests.parquet", "interest_buckets.parquet"
SUMS = ("lead_id", "r", "topic", "w")
BUCKETS = ("lead_id", "r", "topic", "b", "d", "ts")
_TYPES = {"lead_id": "VARCHAR", "r": "INT", "topic": "VARCHAR", "w": "DOUBLE", "b": "BIGINT",
          "d": "VARCHAR", "ts": "BIGINT"}


def _none(columns: Sequence[str]) -> exp.Select:
    """A table of `columns` with no row (so that a union always has a first part)."""
    return exp.select(*(alias(exp.cast(exp.Null(), _TYPES[c]), c) for c in columns)) \
        .where(exp.false())


def _columns(columns: Sequence[str]) -> list[exp.Expr]:
    return [col(c) for c in columns]


def _union(queries: Sequence[exp.Query]) -> exp.Query:
    union = queries[0]
    for query in queries[1:]:
        union = exp.union(union, query, distinct=False)
    return union


def _per_rule(interests: tuple[InterestRule, ...],
              value: Callable[[InterestRule], exp.Expr]) -> exp.Expr:
    """CASE r WHEN i THEN value(rule i) … END."""
    per_rule = exp.Case(this=col("r"))
    for interest in interests:
        per_rule = per_rule.when(exp.Literal.number(interest.index), value(interest))
    return per_rule


class InterestFold:
    """One model's interest state in a runner's tables, folded file group by file group."""

    def __init__(self, con: Runner, model: Model, prefix: str):
        self.con, self.model, self.prefix = con, model, prefix
        self.interests = compile_interests(model)
        self.sums: str | None = None
        self.buckets: str | None = None
        self.ref: int | None = None
        self._n = 0

    def load(self, folder: Path, ref: int) -> None:
        for attr, file in (("sums", SUMS_FILE), ("buckets", BUCKETS_FILE)):
            if (folder / file).exists():
                setattr(self, attr, self.con.load(f"{self.prefix}_i_old_{attr}", folder / file))
        self.ref = ref

    def forget(self, leads: exp.Query) -> None:
        """Drop the state of the leads `leads` (a query of lead_id) — to fold them anew."""
        gone = exp.not_(col("lead_id").isin(query=leads.copy()))
        self._n += 1
        for attr in ("sums", "buckets"):
            name = getattr(self, attr)
            if name is not None:
                setattr(self, attr, self._table(attr, exp.select(exp.Star()).from_(
                    table(name)).where(gone.copy())))

    def fold(self, view: str | None, columns: dict[str, str], where: exp.Expr, ref: int
             ) -> None:
        """Fold in the events of `view` (those `where` keeps; None: none) relative to `ref`."""
        flags = topic_flags(self.interests, columns) if view is not None else []
        sums: list[exp.Query] = [_none(SUMS)]
        buckets: list[exp.Query] = [_none(BUCKETS)]
        if flags:
            assert view is not None
            iv = exp.select(exp.Star(), *(f for _, f in flags)).from_(table(view)).where(where)
            for interest, _ in flags:
                rule, topic = interest.rule, col(f"t{interest.index}")
                head = [col("lead_id"), alias(exp.Literal.number(interest.index), "r"),
                        alias(topic.copy(), "topic")]
                has_topic = exp.not_(exp.Is(this=topic.copy(), expression=exp.Null()))
                if not rule.bucketed:
                    worth = weighted(rule.points, decay(col("ts"), ref, rule.half_life_days))
                    sums.append(exp.select(*head, alias(exp.Sum(this=worth), "w"))
                                .from_(iv.subquery()).where(has_topic)
                                .group_by(col("lead_id"), topic.copy()))
                    continue
                day: exp.Expr = exp.Literal.number(0)
                if rule.limit in ("daily", "weekly"):
                    day = bucket_day(rule.limit, col("ts"), self.model.timezone,
                                     self.con.dialect)
                value = col(rule.distinct) if rule.distinct is not None \
                    and rule.distinct in columns else exp.Null()
                buckets.append(exp.select(
                    *head, alias(bigint(day), "b"),
                    alias(exp.cast(value, exp.DataType.Type.VARCHAR), "d"), col("ts"))
                    .from_(iv.subquery()).where(has_topic))
        if self.sums is not None:
            assert self.ref is not None
            old_ref = self.ref
            factor = _per_rule(self.interests, lambda i: decay(
                exp.Literal.number(old_ref), ref, i.rule.half_life_days) or number(1))
            sums.append(exp.select(*_columns(SUMS[:3]), alias(exp.Mul(
                this=col("w"), expression=factor), "w")).from_(table(self.sums)))
        if self.buckets is not None:
            buckets.append(exp.select(*_columns(BUCKETS)).from_(table(self.buckets)))
        self._n += 1
        self.sums = self._table("sums", exp.select(
            *_columns(SUMS[:3]), alias(exp.Sum(this=col("w")), "w"))
            .from_(_union(sums).subquery()).group_by(*_columns(SUMS[:3])))
        self.buckets = self._table("buckets", exp.select(
            *_columns(BUCKETS[:5]), alias(exp.Max(this=col("ts")), "ts"))
            .from_(_union(buckets).subquery()).group_by(*_columns(BUCKETS[:5])))
        self.ref = ref

    def _table(self, kind: str, query: exp.Query) -> str:
        return self.con.create(f"{self.prefix}_i_{kind}_{self._n}", query)

    def profiles(self) -> dict[str, list[dict[str, Any]]]:
        """lead_id → its ranked interests at the state's ref (the scoring time)."""
        if not self.interests or self.sums is None or self.buckets is None:
            return {}
        assert self.ref is not None
        ref = self.ref
        worth = _per_rule(self.interests, lambda i: weighted(
            i.rule.points, decay(col("ts"), ref, i.rule.half_life_days)))
        rows = _union([exp.select(*_columns(SUMS)).from_(table(self.sums)),
                       exp.select(*_columns(SUMS[:3]), alias(worth, "w"))
                       .from_(table(self.buckets))])
        totals = exp.select(*_columns(SUMS[:3]), alias(exp.Sum(this=col("w")), "w")) \
            .from_(rows.subquery()).group_by(*_columns(SUMS[:3]))
        plan = ranked_plan(self.interests, totals)
        return profiles(self.con.arrow(plan))

    def save(self, folder: Path) -> None:
        for name, file in ((self.sums, SUMS_FILE), (self.buckets, BUCKETS_FILE)):
            if name is not None:
                self.con.save(name, folder / file)
