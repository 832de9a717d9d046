"""The `--state` fold as SQL (sqlglot; DuckDB or Spark: `Layout.dialect`): a model's per-lead
aggregate kept relative to a reference time `ref`, built from `engine.sql.semantics` — the same
match, decay, buckets and split of rule kinds as the plan's `agg` stage, which `aggregate`
rebuilds from the state.

Per lead (the leads table):
    h<j>      Σ points·2^((t − ref)/half-life j) of the uncapped every-event rules, per half-life
    c<i>      the same per capped rule
    g<i>      the closed buckets of `daily`/`weekly` rule i, summed
    o<i>      the latest time of a `once` rule
    pp        the points programs added; back_key, f<rank>: lifecycle; buys, first_buy,
              last_buy, spend: purchases
Per open bucket (the buckets table): lead_id, r (rule), b (day/week), d (distinct value as
text), ts (its latest event).

Sums add, latest times take the maximum, first purchases the minimum; moving `ref` forward to
T multiplies every sum by 2^((ref − T)/half-life), exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlglot import exp

from leadscore.engine.sql.build import (
    alias,
    and_,
    bigint,
    case,
    coalesce,
    col,
    double,
    number,
    or_,
    sum_of,
    table,
)
from leadscore.engine.sql.dialects import Dialect, DuckDB
from leadscore.engine.sql.plan.stages import refuse_own_filters
from leadscore.engine.sql.program_events import points_sql, stage_sql
from leadscore.engine.sql.purchases import purchase_value
from leadscore.engine.sql.semantics import (
    RuleKinds,
    back_key,
    bucket_day,
    decay,
    match_column,
    matches,
    stage_column,
    weighted,
)
from leadscore.errors import EngineError
from leadscore.model.compiled import CompiledModel, EngagementRule, compile_model
from leadscore.model.schema import Model
from leadscore.timeutil import US_PER_DAY

ZERO = double(exp.Literal.number(0))


@dataclass(frozen=True)
class Layout:
    """One model's rules as the state keeps them."""

    compiled: CompiledModel
    kinds: RuleKinds
    dialect: Dialect

    @classmethod
    def of(cls, model: Model, dialect: Dialect | None = None) -> Layout:
        refuse_own_filters(model, "--state")
        compiled = compile_model(model)
        return cls(compiled, RuleKinds.of(compiled), dialect or DuckDB())

    @property
    def half_lives(self) -> list[float | None]:
        """The half-lives of the uncapped every-event rules: one sum `h<j>` each."""
        return list(self.kinds.by_half_life)

    def day(self, rule: EngagementRule, ts: exp.Expr) -> exp.Expr:
        """The day/week number of `rule`'s bucket for the instant `ts`."""
        assert rule.limit is not None
        return bucket_day(rule.limit, ts, self.compiled.timezone, self.dialect)


@dataclass
class State:
    """One model's state in a connection (`runner`): two tables (`buckets` None: no bucketed rule),
    their reference time and the boundary before which daily/weekly buckets are closed (None:
    none closed)."""

    leads: str
    buckets: str | None
    ref: int
    boundary: int | None


def _flag(rule: EngagementRule) -> exp.Expr:
    return col(match_column(rule.index))


def union_by_name(queries: Sequence[exp.Select]) -> exp.Query:
    """The rows of every query, columns matched by name (one group of files may have a
    column another lacks: NULL there). Spelled out rather than DuckDB's `UNION ALL BY NAME`,
    which Spark SQL has not."""
    names = list(dict.fromkeys(name for q in queries for name in q.named_selects))
    return _union([exp.select(*(col(n) if n in q.named_selects else alias(exp.Null(), n)
                                for n in names)).from_(q.subquery()) for q in queries])


def _union(queries: Sequence[exp.Query]) -> exp.Query:
    union = queries[0]
    for query in queries[1:]:
        union = exp.Union(this=union, expression=query, distinct=False)
    return union


# ----------------------------------------------------------------------------- events

def events(layout: Layout, view: str, columns: Mapping[str, str], where: exp.Expr
           ) -> exp.Select:
    """The events of `view` that `where` keeps, with the flags the fold reads: m<i> per
    engagement rule, s<i> per lifecycle `on` rule, program points/stage, purchase value."""
    compiled, kinds = layout.compiled, layout.kinds
    flags = [alias(matches(r.matcher, columns), match_column(r.index)) for r in compiled.rules]
    flags += [alias(matches(s.matcher, columns), stage_column(s.index)) for s in kinds.marking
              if s.matcher is not None]
    # Program events: always two columns (NULL where these files have none), so that every
    # fold has the same aggregates whatever columns its files have.
    points, stage = points_sql(columns, compiled.name), stage_sql(columns, compiled.name)
    flags.append(alias(points if points is not None else double(exp.Null()), "pts"))
    flags.append(alias(stage if stage is not None else exp.cast(
        exp.Null(), exp.DataType.Type.INT), "pst"))
    flags.append(alias(purchase_value(columns), "val"))   # RFM monetary
    return exp.select(*(col(c) for c in ["lead_id", "ts", *_distinct(layout, columns)]),
                      *flags).from_(table(view)).where(where)


def no_events(layout: Layout, columns: Mapping[str, str]) -> exp.Select:
    """`events`' columns, no row."""
    varchar = exp.DataType.Type.VARCHAR
    flags = [alias(exp.false(), match_column(r.index)) for r in layout.compiled.rules]
    flags += [alias(exp.false(), stage_column(s.index)) for s in layout.kinds.marking]
    return exp.select(
        alias(exp.cast(exp.Null(), varchar), "lead_id"), alias(bigint(exp.Null()), "ts"),
        *(alias(exp.cast(exp.Null(), varchar), c) for c in _distinct(layout, columns)),
        *flags, alias(double(exp.Null()), "pts"),
        alias(exp.cast(exp.Null(), exp.DataType.Type.INT), "pst"),
        alias(double(exp.Null()), "val")).where(exp.false())


def _distinct(layout: Layout, columns: Mapping[str, str]) -> list[str]:
    return sorted({r.distinct for r in layout.kinds.bucketed
                   if r.distinct is not None and r.distinct in columns})


# ----------------------------------------------------------------------------- per lead

def fresh(layout: Layout, ev: exp.Query, ref: int) -> exp.Select:
    """Per lead: the aggregates of the events `ev`, sums relative to `ref`."""
    kinds, ts = layout.kinds, col("ts")
    out: list[exp.Expr] = [col("lead_id")]
    for j, (half_life, rules) in enumerate(kinds.by_half_life.items()):
        terms = sum_of([case([(_flag(r), double(number(r.points)))], ZERO.copy())
                        for r in rules])
        weight = decay(ts.copy(), ref, half_life)
        out.append(alias(exp.Sum(this=terms if weight is None else exp.Mul(
            this=exp.Paren(this=terms), expression=weight)), f"h{j}"))
    out += [alias(exp.Sum(this=case([(_flag(r), weighted(r.points, decay(
        ts.copy(), ref, r.half_life_days)))])), f"c{r.index}") for r in kinds.capped]
    out += [alias(double(exp.Null()), f"g{r.index}") for r in kinds.bucketed]
    out += [alias(exp.Max(this=case([(_flag(r), ts.copy())])), f"o{r.index}")
            for r in kinds.latest_only]
    weight = decay(ts.copy(), ref, layout.compiled.program_half_life)
    out.append(alias(exp.Sum(this=col("pts") if weight is None else exp.Mul(
        this=col("pts"), expression=weight)), "pp"))
    backs = [s for s in kinds.marking if s.back]
    out.append(alias(exp.Max(this=back_key(ts.copy(), backs, True)), "back_key"))
    for rank in kinds.forward_ranks:
        hit = or_(*(col(stage_column(s.index)) for s in kinds.marking
                    if not s.back and s.rank == rank))
        out.append(alias(exp.Max(this=case([(hit, ts.copy())])), f"f{rank}"))
    if kinds.customers:
        bought = or_(*(col(stage_column(s.index)) for s in kinds.customers))
        out += [alias(exp.Sum(this=case([(bought, exp.Literal.number(1))],
                                        exp.Literal.number(0))), "buys"),
                alias(exp.Min(this=case([(bought.copy(), ts.copy())])), "first_buy"),
                alias(exp.Max(this=case([(bought.copy(), ts.copy())])), "last_buy"),
                alias(exp.Sum(this=case([(bought.copy(), col("val"))])), "spend")]
    return exp.select(*out).from_(ev.subquery()).group_by(col("lead_id"))


def rescaled(layout: Layout, leads: str, columns: Sequence[str], old_ref: int, ref: int
             ) -> exp.Select:
    """The state's per-lead table `leads` (its `columns`), its sums moved from `old_ref` to
    `ref`."""
    kinds = layout.kinds
    half_lives = {"pp": layout.compiled.program_half_life,
                  **{f"h{j}": half_life for j, half_life in enumerate(layout.half_lives)},
                  **{f"c{r.index}": r.half_life_days for r in kinds.capped},
                  **{f"g{r.index}": r.half_life_days for r in kinds.bucketed}}

    def moved(name: str) -> exp.Expr:
        weight = decay(exp.Literal.number(old_ref), ref, half_lives[name]) \
            if name in half_lives else None
        return col(name) if weight is None else alias(
            exp.Mul(this=col(name), expression=weight), name)

    return exp.select(*(moved(c) for c in columns)).from_(table(leads))


def combine(layout: Layout, parts: Sequence[exp.Select]) -> exp.Select:
    """Per lead: the parts' aggregates (each with `fresh`'s columns or some of them) combined."""
    kinds = layout.kinds

    def agg(kind: type[exp.AggFunc], name: str) -> exp.Expr:
        return alias(kind(this=col(name)), name)

    out: list[exp.Expr] = [col("lead_id")]
    out += [agg(exp.Sum, f"h{j}") for j in range(len(layout.half_lives))]
    out += [agg(exp.Sum, f"c{r.index}") for r in kinds.capped]
    out += [agg(exp.Sum, f"g{r.index}") for r in kinds.bucketed]
    out += [agg(exp.Max, f"o{r.index}") for r in kinds.latest_only]
    out += [agg(exp.Sum, "pp"), agg(exp.Max, "back_key")]
    out += [agg(exp.Max, f"f{rank}") for rank in kinds.forward_ranks]
    if kinds.customers:
        out += [agg(exp.Sum, "buys"), agg(exp.Min, "first_buy"), agg(exp.Max, "last_buy"),
                agg(exp.Sum, "spend")]
    return exp.select(*out).from_(union_by_name(parts).subquery()).group_by(col("lead_id"))


# ----------------------------------------------------------------------------- buckets

def bucket_rows(layout: Layout, ev: exp.Query, columns: Mapping[str, str]) -> exp.Query | None:
    """One row per event of `ev` and bucketed rule it counts for: lead_id, r, b, d, ts."""
    parts: list[exp.Query] = []
    for rule in layout.kinds.bucketed:
        day = layout.day(rule, col("ts")) if rule.limit in ("daily", "weekly") \
            else exp.Literal.number(0)
        value = distinct_text(rule.distinct, columns[rule.distinct]) \
            if rule.distinct is not None and rule.distinct in columns \
            else exp.cast(exp.Null(), exp.DataType.Type.VARCHAR)
        parts.append(exp.select(col("lead_id"), alias(exp.Literal.number(rule.index), "r"),
                                alias(bigint(day), "b"), alias(value, "d"), col("ts"))
                     .from_(ev.subquery()).where(_flag(rule)))
    return _union(parts) if parts else None


def latest_per_bucket(rows: exp.Query) -> exp.Select:
    """The latest time of each bucket of `rows`."""
    keys = [col("lead_id"), col("r"), col("b"), col("d")]
    return exp.select(*keys, alias(exp.Max(this=col("ts")), "ts")).from_(rows.subquery()) \
        .group_by(*(k.copy() for k in keys))


def merged_buckets(old: str, new: str) -> exp.Select:
    """The buckets of tables `old` and `new`, one row per bucket with its latest time.

    Merged by a join, not one GROUP BY over old and new: the old buckets (every lead's
    distinct values: tens of millions at a billion events) stream past the new ones' hash
    table instead of all being held in one."""
    def either(name: str) -> exp.Expr:
        return alias(coalesce(col(name, "n"), col(name, "o")), name)

    newer = or_(exp.Is(this=col("ts", "o"), expression=exp.Null()),
                exp.GT(this=col("ts", "n"), expression=col("ts", "o")))
    return exp.select(
        either("lead_id"), either("r"), either("b"),
        alias(case([(exp.Is(this=col("lead_id", "n"), expression=exp.Null()), col("d", "o"))],
                   col("d", "n")), "d"),
        alias(case([(newer, col("ts", "n"))], col("ts", "o")), "ts"),
    ).from_(table(old, "o")).join(table(new, "n"), join_type="FULL OUTER", on=and_(
        *(exp.EQ(this=col(k, "o"), expression=col(k, "n")) for k in ("lead_id", "r", "b")),
        exp.NullSafeEQ(this=col("d", "o"), expression=col("d", "n"))))


def distinct_text(name: str, sql_type: str) -> exp.Expr:
    """A `distinct` value as the text the saved buckets hold, the same for 5 and 5.0: one
    day's file may type a property BIGINT and the next day's DOUBLE (pandas writes an integer
    column with gaps as floats), and a full re-score, reading both as one column, counts them
    as one value."""
    value, varchar = col(name), exp.DataType.Type.VARCHAR
    kind = sql_type.upper()
    if kind in ("DOUBLE", "FLOAT", "REAL") or kind.startswith("DECIMAL"):
        # floor, not trunc (Spark's trunc is for dates): the same test of a whole number
        whole = and_(exp.EQ(this=value, expression=exp.Floor(this=value.copy())),
                     exp.LT(this=exp.Abs(this=value.copy()),
                            expression=exp.Literal.number("1e18")))
        return case([(whole, exp.cast(bigint(value.copy()), varchar))],
                    exp.cast(value.copy(), varchar))
    return exp.cast(value, varchar)


def closed(layout: Layout, boundary: int | None) -> exp.Expr | None:
    """A bucket row that no event after `boundary` can fall in (None: no bucket closes)."""
    if boundary is None or not layout.kinds.day_rules:
        return None
    last = exp.Literal.number(boundary - US_PER_DAY)
    return or_(*(and_(exp.EQ(this=col("r"), expression=exp.Literal.number(r.index)),
                      exp.LT(this=col("b"), expression=layout.day(r, last.copy())))
                 for r in layout.kinds.day_rules))


def bucket_sums(layout: Layout, source: exp.Query, ref: int) -> exp.Select:
    """Per lead, g<i>: the decayed points of the buckets of `source`, relative to `ref`."""
    sums = [alias(exp.Sum(this=case([(exp.EQ(this=col("r"), expression=exp.Literal.number(
        r.index)), weighted(r.points, decay(col("ts"), ref, r.half_life_days)))])),
        f"g{r.index}") for r in layout.kinds.bucketed]
    return exp.select(col("lead_id"), *sums).from_(source.subquery()).group_by(col("lead_id"))


def late_leads(layout: Layout, ev: exp.Query, state: State) -> exp.Select | None:
    """Leads with an event in `ev` that falls in a bucket `state` has already closed."""
    if state.boundary is None or not layout.kinds.day_rules:
        return None
    last = exp.Literal.number(state.boundary - US_PER_DAY)
    late = or_(*(and_(_flag(r), exp.LT(this=layout.day(r, col("ts")),
                                       expression=layout.day(r, last.copy())))
                 for r in layout.kinds.day_rules))
    return exp.select(col("lead_id")).distinct().from_(ev.subquery()).where(and_(
        exp.LTE(this=col("ts"), expression=exp.Literal.number(state.boundary)),
        exp.Paren(this=late)))


# ----------------------------------------------------------------------------- scores

def aggregate(layout: Layout, state: State, names: Sequence[str]) -> exp.Select:
    """The plan's per-lead aggregate `agg` (columns `names`, as `engine.sql.plan.aggregate`
    has them) from a state whose ref is the scoring time."""
    open_sums = bucket_sums(layout, exp.select(exp.Star()).from_(table(state.buckets)),
                            state.ref) if state.buckets is not None else None
    kept = {"pp", "back_key", "buys", "first_buy", "last_buy", "spend"}
    out: list[exp.Expr] = []
    for name in names:
        if name == "lead_id":
            out.append(col("lead_id", "s"))
        elif name == "v":
            out.append(alias(sum_of([coalesce(col(f"h{j}", "s"), ZERO.copy())
                                     for j in range(len(layout.half_lives))]), "v"))
        elif name.startswith("g") and open_sums is not None:
            out.append(alias(exp.Add(this=coalesce(col(name, "s"), ZERO.copy()),
                                     expression=coalesce(col(name, "q"), ZERO.copy())), name))
        elif name in kept or name[0] in "cgof":
            out.append(col(name, "s"))
        else:
            raise EngineError(f"state: the plan's aggregate {name!r} is not kept in the state")
    query = exp.select(*out).from_(table(state.leads, "s"))
    if open_sums is not None:
        query = query.join(open_sums.subquery("q"), join_type="LEFT", on=exp.EQ(
            this=col("lead_id", "s"), expression=col("lead_id", "q")))
    return query
