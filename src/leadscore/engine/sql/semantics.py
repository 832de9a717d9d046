"""What a model's rules mean, as SQL: the one definition the scoring plan and `--state` share
(DESIGN.md §3 semantics; `engine.incremental` is the same in Python).

    matches      an event a rule counts: its signature (name or page globs) and its `where`
    decay        2^((t − as_of) / half-life): an event's weight at as_of; `weighted` points
    bucket_day   the day or ISO week, in the model's time zone, that `daily`/`weekly` count by
    clamp        a capped rule's total, bounded to ±cap
    RuleKinds    how each rule counts — every event (capped or not, by half-life), only the
                 latest (`once`), the latest per bucket — and which stages events mark
    back_key     the lowest stage a lead's latest `back: true` event moves it to
    exact_type   the DECIMAL that sums points exactly, in any order
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlglot import exp

from leadscore.engine.sql.build import and_, case, coalesce, col, double, instant, number
from leadscore.engine.sql.conditions import to_sql
from leadscore.engine.sql.dialects import Dialect
from leadscore.engine.sql.signatures import named
from leadscore.model.compiled import (
    CUSTOMER_RANK,
    CompiledModel,
    EngagementRule,
    Matcher,
    StageRule,
)
from leadscore.timeutil import ISO_WEEK_SHIFT_DAYS, US_PER_DAY

# Days added before integer division so that `//` (which truncates in some engines) floors
# for any instant after year ~100 too; a multiple of 7 so ISO weeks stay aligned.
DAY_SHIFT = 7 * 100_000
STAGE_BITS = 16           # stage ranks 0..15 under a timestamp: (ts + shift) * 16 + 15 - rank


def match_column(index: int) -> str:
    """The column flagging the events engagement rule `index` matches (`m<index>`)."""
    return f"m{index}"


def stage_column(index: int) -> str:
    """The column flagging the events lifecycle rule `index` matches (`s<index>`)."""
    return f"s{index}"


def matches(matcher: Matcher, columns: Mapping[str, str]) -> exp.Expr:
    """SQL for `Matcher.matches(event)` over the canonical events columns."""
    hit = named(matcher)
    if matcher.where is not None:
        hit = and_(hit, to_sql(matcher.where, columns))
    return hit


def decay(ts: exp.Expr, as_of: int | exp.Expr, half_life_days: float | None
          ) -> exp.Expr | None:
    """2^((ts − as_of) / half-life), or None for no decay."""
    if half_life_days is None:
        return None
    age = double(exp.Sub(this=ts, expression=instant(as_of)))
    return exp.Pow(this=exp.Literal.number(2),
                   expression=exp.Div(this=exp.Paren(this=age),
                                      expression=number(half_life_days * US_PER_DAY)))


def weighted(points: float, weight: exp.Expr | None) -> exp.Expr:
    """`points` (DOUBLE) times `weight` (a `decay`; None: 1)."""
    value = double(number(points))
    return value if weight is None else exp.Mul(this=value, expression=weight)


def bucket_day(limit: str, ts: exp.Expr, zone: str, dialect: Dialect) -> exp.Expr:
    """The day (`daily`) or ISO week (`weekly`) number of the instant `ts` in time zone `zone`:
    the bucket a `limit` rule counts one event per."""
    local = ts if zone == "UTC" else dialect.local_time(ts, zone)
    shifted = exp.Add(this=local, expression=exp.Literal.number(DAY_SHIFT * US_PER_DAY))
    day = exp.IntDiv(this=exp.Paren(this=shifted), expression=exp.Literal.number(US_PER_DAY))
    if limit == "weekly":
        day = exp.IntDiv(this=exp.Paren(this=exp.Add(
            this=day, expression=exp.Literal.number(ISO_WEEK_SHIFT_DAYS))),
            expression=exp.Literal.number(7))
    return day


def clamp(total: exp.Expr, cap: float) -> exp.Expr:
    """`total` bounded to [−cap, cap]: a capped rule's contribution."""
    bound = double(number(cap))
    return case([(exp.GT(this=total, expression=bound), bound.copy()),
                 (exp.LT(this=total.copy(), expression=exp.Neg(this=bound.copy())),
                  exp.Neg(this=bound.copy()))], total.copy())


@dataclass(frozen=True)
class RuleKinds:
    """How each rule of a model counts, the split both the plan's aggregate and the `--state`
    fold are built on (each kind is one kind of per-lead state):

    every        not bucketed: every matching event counts (rule order)
    by_half_life the uncapped `every` rules by half-life: one decayed sum per half-life
    capped       the capped `every` rules: a decayed sum each, clamped when scored
    latest_only  `once` without `distinct`: only the latest matching time
    bucketed     the other `limit`/`distinct` rules: the latest time per bucket, summed
    marking      the lifecycle rules an event marks (`on:`)
    """

    every: tuple[EngagementRule, ...]
    by_half_life: dict[float | None, list[EngagementRule]]
    capped: tuple[EngagementRule, ...]
    latest_only: tuple[EngagementRule, ...]
    bucketed: tuple[EngagementRule, ...]
    marking: tuple[StageRule, ...]

    @classmethod
    def of(cls, compiled: CompiledModel) -> RuleKinds:
        latest_only = tuple(r for r in compiled.rules if r.limit == "once" and r.distinct is None)
        every = tuple(r for r in compiled.rules if not r.bucketed)
        by_half_life: dict[float | None, list[EngagementRule]] = {}
        for rule in every:
            if rule.cap is None:
                by_half_life.setdefault(rule.half_life_days, []).append(rule)
        return cls(every=every, by_half_life=by_half_life,
                   capped=tuple(r for r in every if r.cap is not None),
                   latest_only=latest_only,
                   bucketed=tuple(r for r in compiled.rules
                                  if r.bucketed and r not in latest_only),
                   marking=tuple(s for s in compiled.stages if s.matcher))

    @property
    def uncapped(self) -> list[EngagementRule]:
        """The uncapped `every` rules, in rule order."""
        return [r for r in self.every if r.cap is None]

    @property
    def day_rules(self) -> list[EngagementRule]:
        """The bucketed rules counting by day or week (their buckets close as time passes)."""
        return [r for r in self.bucketed if r.limit in ("daily", "weekly")]

    @property
    def forward_ranks(self) -> list[int]:
        """The stages an event moves a lead forward to."""
        return sorted({s.rank for s in self.marking if not s.back})

    @property
    def backs(self) -> list[StageRule]:
        """The `back: true` rules, lowest stage first."""
        return sorted((s for s in self.marking if s.back), key=lambda s: s.rank)

    @property
    def customers(self) -> list[StageRule]:
        """The rules whose events are purchases (they make a customer)."""
        return [s for s in self.marking if s.rank == CUSTOMER_RANK]


def back_key(ts: exp.Expr, backs: Sequence[StageRule], program_stage: bool,
             flag: Callable[[StageRule], exp.Expr] | None = None) -> exp.Expr:
    """Per event, `(ts + shift) · 8 + 7 − rank` of the lowest stage it moves back to (a
    `back: true` rule, or column `pst`: a program's `Lifecycle Stage Set`), else NULL: the
    MAX over a lead's events is its latest back event, ties going to the lowest stage.
    `flag`: whether an event matches a stage rule (default: its column `s<index>`)."""
    ranked = sorted(backs, key=lambda s: s.rank)
    hit = flag or (lambda stage: col(stage_column(stage.index)))
    rank: exp.Expr | None = case([(hit(s), exp.Literal.number(s.rank))
                                  for s in ranked]) if ranked else None
    if program_stage:
        none = exp.Literal.number(STAGE_BITS)
        rank = col("pst") if rank is None else exp.Nullif(this=exp.Least(
            this=coalesce(rank, none), expressions=[coalesce(col("pst"), none.copy())]),
            expression=none.copy())
    assert rank is not None
    shifted = exp.Paren(this=exp.Add(this=ts, expression=exp.Literal.number(
        DAY_SHIFT * US_PER_DAY)))
    return exp.Sub(this=exp.Add(this=exp.Mul(this=shifted, expression=exp.Literal.number(
        STAGE_BITS)), expression=exp.Literal.number(STAGE_BITS - 1)), expression=rank)


def exact_type(points: Iterable[float]) -> exp.DataType:
    """DECIMAL(18, p) holding any one term (|term| ≤ |points|: decay never exceeds 1) with as
    many places as fit, at most 12: points are summed in it, so a sum is the same in any
    order (a parallel sum of doubles is not)."""
    largest = max((abs(p) for p in points), default=1.0)
    digits = len(str(int(largest))) + 1
    places = max(0, min(12, 18 - digits))
    return exp.DataType.build(f"DECIMAL(18, {places})")
