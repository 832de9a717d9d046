"""A model compiled to one SQL plan, built as sqlglot expressions so it renders for DuckDB and
Spark alike (DESIGN.md §5: BIGINT µs timestamps, LIKE … ESCAPE, no float literals, integer day
arithmetic; the one dialect difference, local time in a time zone, is `LOCAL_TIME`).

The plan, for one model and one `as_of`:

    ev      the events at or before as_of, with one match flag per rule (and the points or
            stage of program events, `engine.program_sql`)
    rows    one row per event (its points for rules where every event counts, lifecycle
            marks) UNION ALL one row per (lead, rule, bucket) of `once`/`daily`/`weekly`/
            `distinct` rules (the most recent event of the bucket, decayed)
    agg     per lead: the sum of uncapped points, each capped rule's own sum, lifecycle marks
    people  leads FULL OUTER JOIN agg: every lead of the table and every lead with an event
    final   fit, grade, temperature, mql, stage ... for the leads `applies_to` selects
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlglot import exp

from leadscore.engine.program_sql import POINTS_TYPE, points_sql, stage_sql
from leadscore.engine.rfm import purchase_value
from leadscore.engine.signatures import Signatures, named
from leadscore.engine.sqlconditions import and_, number, or_, text, to_sql
from leadscore.model import conditions as cond
from leadscore.model.compiled import (
    CUSTOMER_RANK,
    MQL_RANK,
    CompiledModel,
    EngagementRule,
    Matcher,
    StageRule,
    compile_model,
)
from leadscore.model.schema import STAGES, Model
from leadscore.timeutil import ISO_WEEK_SHIFT_DAYS, US_PER_DAY

# Days added before integer division so that `//` (which truncates in some engines) floors
# for any instant after year ~100 too; a multiple of 7 so ISO weeks stay aligned.
DAY_SHIFT = 7 * 100_000
STAGE_BITS = 8            # stage ranks 0..7 packed under a timestamp: (ts + shift) * 8 + 7 - rank


def col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def _as(expression: exp.Expr, name: str) -> exp.Expr:
    return exp.alias_(expression, name, quoted=True)


def _table(name: str, alias: str | None = None) -> exp.Expr:
    table = exp.Table(this=exp.to_identifier(name, quoted=True))
    return table.as_(alias, quoted=True) if alias else table


def _double(expression: exp.Expr) -> exp.Expr:
    return exp.cast(expression, exp.DataType.Type.DOUBLE)


def _bigint(expression: exp.Expr) -> exp.Expr:
    return exp.cast(expression, exp.DataType.Type.BIGINT)


def _case(whens: Sequence[tuple[exp.Expr, exp.Expr]], default: exp.Expr | None = None
          ) -> exp.Expr:
    case = exp.Case()
    for condition, value in whens:
        case = case.when(condition, value)
    return case.else_(default) if default is not None else case


def _coalesce(expression: exp.Expr, default: exp.Expr) -> exp.Expr:
    return exp.func("COALESCE", expression, default)


def _greatest(items: Sequence[exp.Expr]) -> exp.Expr:
    """GREATEST of non-NULL arguments (every item must be non-NULL: dialects differ there)."""
    if len(items) == 1:
        return items[0]
    return exp.Greatest(this=items[0], expressions=list(items[1:]), ignore_nulls=True)


# ----------------------------------------------------------------------------- dialects

def _duckdb_local_us(ts: exp.Expr, zone: str) -> exp.Expr:
    instant = exp.Anonymous(this="timezone", expressions=[
        text("UTC"), exp.Anonymous(this="make_timestamp", expressions=[ts])])
    local = exp.Anonymous(this="timezone", expressions=[text(zone), instant])
    return exp.Anonymous(this="epoch_us", expressions=[local])


def _spark_local_us(ts: exp.Expr, zone: str) -> exp.Expr:
    # Needs the session time zone set to UTC (spark.sql.session.timeZone=UTC).
    stamp = exp.Anonymous(this="timestamp_micros", expressions=[ts])
    local = exp.Anonymous(this="from_utc_timestamp", expressions=[stamp, text(zone)])
    return exp.Anonymous(this="unix_micros", expressions=[local])


# The wall-clock time (µs) of an instant in a time zone: the one function that differs by engine.
LOCAL_TIME: dict[str, Callable[[exp.Expr, str], exp.Expr]] = {
    "duckdb": _duckdb_local_us,
    "spark": _spark_local_us,
}


# ----------------------------------------------------------------------------- matching

@dataclass(frozen=True)
class PlanOptions:
    """Choices that change speed, never results."""

    events_table: str = "events"
    leads_table: str | None = "leads"
    dialect: str = "duckdb"
    # "hash": the bucket GROUP BY keys leads by a 64-bit hash of lead_id (an integer groups
    # faster than a string), and the plan outputs that hash as a column `k` so that the caller
    # checks it is unique over the leads (and runs the plan again with "lead_id" if not).
    lead_key: str = "lead_id"
    # False: no ORDER BY in the plan (the caller sorts the small result itself).
    order: bool = True
    # True: also output each rule's contribution (`rule_column`), so that one run tells which
    # leads every rule fired for (evaluate's per-rule analysis).
    rule_columns: bool = False


def rule_column(kind: str, index: int) -> str:
    """The plan's column with one rule's contribution when `PlanOptions.rule_columns`:
    kind "engagement" (points after decay, limits and cap), "fit" (points) or "disqualify"
    (whether the fit rule's condition holds) for the rule at `index` of its section."""
    return {"engagement": "ep", "fit": "fp", "disqualify": "fq"}[kind] + str(index)


# A 64-bit hash of a string, per dialect.
HASH: dict[str, str] = {"duckdb": "hash", "spark": "xxhash64"}


def _lead_key(lead_id: exp.Expr, opts: PlanOptions) -> exp.Expr | None:
    """The lead key of the bucket GROUP BY: None means lead_id itself."""
    if opts.lead_key == "lead_id":
        return None
    if opts.lead_key != "hash":
        raise ValueError(f"lead_key {opts.lead_key!r}: expected 'lead_id' or 'hash'")
    return exp.Anonymous(this=HASH[opts.dialect], expressions=[lead_id])


def _exact_type(compiled: CompiledModel) -> exp.DataType:
    return exact_type(r.points for r in compiled.rules)


def exact_type(points: Iterable[float]) -> exp.DataType:
    """DECIMAL(18, p) holding any one term (|term| ≤ |points|: decay never exceeds 1) with as
    many places as fit, at most 12."""
    largest = max((abs(p) for p in points), default=1.0)
    digits = len(str(int(largest))) + 1
    places = max(0, min(12, 18 - digits))
    return exp.DataType.build(f"DECIMAL(18, {places})")


def _sql_type(name: str) -> exp.DataType | str:
    try:
        return exp.DataType.build(name)
    except Exception:   # an engine's own type name sqlglot does not know: leave it untyped
        return "VARCHAR"


def _matches(matcher: Matcher, columns: Mapping[str, str]) -> exp.Expr:
    """SQL for `Matcher.matches(event)` over the canonical events columns."""
    hit = named(matcher)
    if matcher.where is not None:
        hit = and_(hit, to_sql(matcher.where, columns))
    return hit


def _flag(index: int) -> str:
    return f"m{index}"


def _stage_flag(index: int) -> str:
    return f"s{index}"


def _decay(ts: exp.Expr, as_of: int, half_life_days: float | None) -> exp.Expr | None:
    """2^((ts − as_of) / half-life) or None for no decay."""
    if half_life_days is None:
        return None
    age = _double(exp.Sub(this=ts, expression=exp.Literal.number(as_of)))
    return exp.Pow(this=exp.Literal.number(2),
                   expression=exp.Div(this=exp.Paren(this=age),
                                      expression=number(half_life_days * US_PER_DAY)))


def _weighted(points: float, weight: exp.Expr | None) -> exp.Expr:
    value = _double(number(points))
    return value if weight is None else exp.Mul(this=value, expression=weight)


def _bucket_keys(rule: EngagementRule, columns: Mapping[str, str], zone: str,
                 dialect: str) -> list[exp.Expr]:
    keys: list[exp.Expr] = []
    if rule.limit in ("daily", "weekly"):
        ts = col("ts")
        local = ts if zone == "UTC" else LOCAL_TIME[dialect](ts, zone)
        shifted = exp.Add(this=local, expression=exp.Literal.number(DAY_SHIFT * US_PER_DAY))
        day = exp.IntDiv(this=exp.Paren(this=shifted),
                         expression=exp.Literal.number(US_PER_DAY))
        if rule.limit == "weekly":
            day = exp.IntDiv(this=exp.Paren(this=exp.Add(
                this=day, expression=exp.Literal.number(ISO_WEEK_SHIFT_DAYS))),
                expression=exp.Literal.number(7))
        keys.append(day)
    if rule.distinct is not None:
        keys.append(col(rule.distinct) if rule.distinct in columns else exp.Null())
    return keys


# ----------------------------------------------------------------------------- the plan

def compile_plan(model: Model | CompiledModel, events_columns: Mapping[str, str],
                 leads_columns: Mapping[str, str] | None, as_of_us: int, *,
                 options: PlanOptions | None = None) -> exp.Select:
    """The SQL plan scoring every lead under `model` at `as_of_us` (µs since the epoch, UTC).

    `events_columns` / `leads_columns` map the canonical columns of the events and leads
    tables (see `leadscore.io`) to their SQL types; `leads_columns` None means no leads table.
    Render with `.sql(dialect="duckdb")` (or "spark").
    """
    opts = options or PlanOptions()
    compiled = model if isinstance(model, CompiledModel) else compile_model(model)
    leads_table = opts.leads_table if leads_columns is not None else None
    lead_columns = dict(leads_columns or {})
    as_of = exp.Literal.number(as_of_us)
    ts = col("ts")

    # ---- ev: needed columns and the flags of every engagement rule and lifecycle `on` rule as
    # bit masks, per event in the scan or once per distinct event signature (`engine.signatures`).
    signatures = Signatures(
        [*((_flag(r.index), r.matcher) for r in compiled.rules),
         *((_stage_flag(s.index), s.matcher) for s in compiled.stages if s.matcher)],
        events_columns)
    flags: list[exp.Expr] = signatures.staged()
    program_points = points_sql(events_columns, compiled.name)
    program_stage = stage_sql(events_columns, compiled.name)
    if program_points is not None:
        flags.append(_as(program_points, "pts"))
    if program_stage is not None:
        flags.append(_as(program_stage, "pst"))
    needed = {"lead_id", "ts"}
    value = purchase_value(events_columns)   # a purchase's value (monetary), from properties
    if any(s.matcher and s.rank == CUSTOMER_RANK for s in compiled.stages):
        needed.update(c.name for c in value.find_all(exp.Column))
    # A `distinct` value is staged only on the events of the rules that read it (strings cost
    # most of the staged table; most events match no such rule).
    distinct_of: dict[str, list[str]] = {}
    for rule in compiled.rules:
        if rule.distinct is not None and rule.distinct in events_columns \
                and rule.distinct not in needed:
            distinct_of.setdefault(rule.distinct, []).append(_flag(rule.index))
    staged = [col(c) for c in sorted(needed)] + [
        _as(_case([(or_(*(signatures.flag(name, inline=True) for name in names)), col(c))]), c)
        for c, names in sorted(distinct_of.items())]
    key = _lead_key(col("lead_id"), opts)
    until = exp.LTE(this=ts.copy(), expression=as_of.copy())
    ev = exp.select(*staged, *([_as(key, "k")] if key else []),
                    *flags).from_(_table(opts.events_table))
    if signatures.matchers:
        ev = signatures.join(ev, _table(opts.events_table), until)
    ev = ev.where(until)

    # ---- per lead (one GROUP BY over the events): the sums of rules where every event counts,
    # the latest time of `once` rules without `distinct`, lifecycle marks.
    # `once` without `distinct`: only the latest matching time per lead matters, a MAX here.
    latest_only = [r for r in compiled.rules if r.limit == "once" and r.distinct is None]
    grouped = [r for r in compiled.rules if r.bucketed and r not in latest_only]
    each = [r for r in compiled.rules if not r.bucketed]
    capped_each = [r for r in each if r.cap is not None]
    forward_ranks = sorted({s.rank for s in compiled.stages if s.matcher and not s.back})
    backs = sorted((s for s in compiled.stages if s.matcher and s.back), key=lambda s: s.rank)
    customers = [s for s in compiled.stages if s.matcher and s.rank == CUSTOMER_RANK]
    exact = _exact_type(compiled)

    def flag(rule: EngagementRule) -> exp.Expr:
        return signatures.flag(_flag(rule.index))

    def stage_flag(stage: StageRule) -> exp.Expr:
        return signatures.flag(_stage_flag(stage.index))

    def stage_hit(stages: Sequence[StageRule]) -> exp.Expr:
        return or_(*(stage_flag(s) for s in stages))

    def exact_sum(value: exp.Expr) -> exp.Expr:
        # Points are summed as DECIMAL, not DOUBLE: a parallel floating-point sum depends on
        # the order rows arrive in (results differed run to run in the last digits); a sum of
        # decimals (integers underneath) is exact in any order. Each term is rounded to
        # `_exact_type`'s places (≤ 1e-12 for points below 100k), far inside the engines'
        # 1e-9 agreement.
        return exp.Sum(this=exp.cast(value, exact.copy()))

    # Uncapped rules where every event counts: one number per event, decay computed once per
    # half-life.
    by_half_life: dict[float | None, list[EngagementRule]] = {}
    for rule in each:
        if rule.cap is None:
            by_half_life.setdefault(rule.half_life_days, []).append(rule)
    parts: list[exp.Expr] = []
    for half_life, rules in by_half_life.items():
        points = [(flag(r), _double(number(r.points))) for r in rules]
        total = _case(points, _double(exp.Literal.number(0))) if len(rules) == 1 else \
            _sum_of([_case([p], _double(exp.Literal.number(0))) for p in points])
        weight = _decay(ts.copy(), as_of_us, half_life)
        parts.append(total if weight is None else exp.Mul(this=exp.Paren(this=total),
                                                          expression=weight))
    shift = exp.Literal.number(DAY_SHIFT * US_PER_DAY)
    lead_key = _lead_key(col("lead_id"), opts)

    aggregates: list[exp.Expr] = [col("lead_id")]
    if lead_key is not None:
        aggregates.append(_as(_lead_key(col("lead_id"), opts) or col("lead_id"), "k"))
    if parts:
        # Only the events some such rule matched are weighed (most events match none).
        matched = or_(*(flag(r) for rules in by_half_life.values() for r in rules))
        aggregates.append(_as(exp.Sum(this=_case([(matched, exp.cast(
            _sum_of(parts), exact.copy()))])), "v"))
    for r in capped_each:
        aggregates.append(_as(exact_sum(_case([(flag(r), _weighted(r.points, _decay(
            ts.copy(), as_of_us, r.half_life_days)))])), f"c{r.index}"))
    aggregates += [_as(exp.Max(this=_case([(flag(r), ts.copy())])), f"o{r.index}")
                   for r in latest_only]
    if opts.rule_columns:   # the uncapped every-event rules, each on its own
        aggregates += [_as(exact_sum(_case([(flag(r), _weighted(r.points, _decay(
            ts.copy(), as_of_us, r.half_life_days)))])), f"e{r.index}")
            for r in each if r.cap is None]
    if program_points is not None:   # points a program added: every event counts
        weight = _decay(ts.copy(), as_of_us, compiled.program_half_life)
        added = col("pts") if weight is None else exp.Mul(this=col("pts"), expression=weight)
        aggregates.append(_as(exp.Sum(this=exp.cast(added, POINTS_TYPE)), "pp"))
    if backs or program_stage is not None:
        aggregates.append(_as(exp.Max(this=back_key(ts.copy(), backs, program_stage
                                                     is not None, stage_flag)), "back_key"))
    for rank in forward_ranks:
        hits = [s for s in compiled.stages if s.matcher and not s.back and s.rank == rank]
        aggregates.append(_as(exp.Max(this=_case([(stage_hit(hits), ts.copy())])), f"f{rank}"))
    if customers:
        aggregates += [
            _as(exp.Sum(this=_case([(stage_hit(customers), exp.Literal.number(1))],
                                   exp.Literal.number(0))), "buys"),
            _as(exp.Min(this=_case([(stage_hit(customers), ts.copy())])), "first_buy"),
            _as(exp.Max(this=_case([(stage_hit(customers), ts.copy())])), "last_buy"),
            _as(exp.Sum(this=_case([(stage_hit(customers), value.copy())])), "spend")]
    per_lead = exp.select(*aggregates).from_(_table("ev")).group_by(col("lead_id"))

    # ---- buckets: `once`/`daily`/`weekly`/`distinct` rules, the latest time per bucket, then
    # one row per lead with each rule's decayed sum (`_bucket_sums`).
    key_column = col("k") if lead_key is not None else col("lead_id")
    bucket_agg = _bucket_sums(grouped, flag, key_column, events_columns, compiled.timezone,
                              opts.dialect, as_of_us, exact) if grouped else None

    lead_values = [c.alias_or_name for c in aggregates[1:] if c.alias_or_name != "k"]
    if bucket_agg is not None:
        agg = exp.select(col("lead_id", "p"), *(col(c, "p") for c in lead_values),
                         *(col(f"g{r.index}", "q") for r in grouped)) \
            .from_(per_lead.subquery("p", copy=False)) \
            .join(bucket_agg.subquery("q", copy=False), on=exp.EQ(
                this=col(key_column.name, "p"), expression=col(key_column.name, "q")),
                join_type="LEFT")
        if lead_key is not None:
            agg = agg.select(col("k", "p"), copy=False)
    else:
        agg = per_lead
    agg_columns = ["lead_id", *lead_values, *(f"g{r.index}" for r in grouped)]
    if lead_key is not None:
        agg_columns.append("k")

    # ---- people: every lead of the table and every lead with an event
    if leads_table is not None:
        people = exp.select(
            _as(_coalesce(col("lead_id", "l"), col("lead_id", "a")), "lead_id"),
            *(col(c, "l") for c in lead_columns if c != "lead_id"),
            *(col(c, "a") for c in agg_columns[1:]),
        ).from_(_table(leads_table, "l")).join(
            _table("agg", "a"), on=exp.EQ(this=col("lead_id", "l"), expression=col("lead_id", "a")),
            join_type="FULL OUTER")
    else:
        people = exp.select(exp.Star()).from_(_table("agg"))

    # ---- scored: fit, engagement, disqualification, stages from traits and events
    def lead_condition(condition: cond.Condition) -> exp.Expr:
        return to_sql(condition, lead_columns)

    fit_terms: list[exp.Expr] = []
    disqualify: list[tuple[exp.Expr, exp.Expr]] = []
    per_rule: list[exp.Expr] = []     # with `rule_columns`
    for fit_rule in compiled.fit:
        if fit_rule.bands:
            whens = [(lead_condition(band), _double(number(points)))
                     for band, points in fit_rule.bands]
            matched = or_(*(w for w, _ in whens))
            fit_terms.append(_case(whens, _double(exp.Literal.number(0))))
        else:
            assert fit_rule.when is not None
            matched = lead_condition(fit_rule.when)
            fit_terms.append(_case([(matched, _double(number(fit_rule.points)))],
                                   _double(exp.Literal.number(0))))
        if fit_rule.disqualify is not None:
            disqualify.append((matched.copy(), text(fit_rule.disqualify)))
        per_rule += [_as(fit_terms[-1].copy(), rule_column("fit", fit_rule.index)),
                     _as(_coalesce(matched.copy(), exp.false()),
                         rule_column("disqualify", fit_rule.index))]
    fit = _sum_of(fit_terms) if fit_terms else _double(exp.Literal.number(0))
    zero = _double(exp.Literal.number(0))
    engagement = _coalesce(_double(col("v")), zero.copy()) if parts else zero.copy()
    clamped = []
    for rule in [*capped_each, *grouped]:
        name = f"c{rule.index}" if rule in capped_each else f"g{rule.index}"
        total = _coalesce(_double(col(name)), zero.copy())
        if rule.cap is None:
            clamped.append(total)
        else:
            cap = _double(number(rule.cap))
            clamped.append(_case([(exp.GT(this=total, expression=cap), cap.copy()),
                                  (exp.LT(this=total.copy(),
                                          expression=exp.Neg(this=cap.copy())),
                                   exp.Neg(this=cap.copy()))], total.copy()))
        per_rule.append(_as(clamped[-1].copy(), rule_column("engagement", rule.index)))
    for rule in latest_only:
        last_seen = col(f"o{rule.index}")
        worth = _weighted(rule.points, _decay(last_seen.copy(), as_of_us, rule.half_life_days))
        if rule.cap is not None:
            cap = _double(number(rule.cap))
            worth = _case([(exp.GT(this=worth, expression=cap), cap.copy()),
                            (exp.LT(this=worth.copy(), expression=exp.Neg(this=cap.copy())),
                             exp.Neg(this=cap.copy()))], worth.copy())
        clamped.append(_case([(exp.not_(exp.Is(this=last_seen.copy(), expression=exp.Null())),
                               worth)], _double(exp.Literal.number(0))))
        per_rule.append(_as(clamped[-1].copy(), rule_column("engagement", rule.index)))
    per_rule += [_as(_coalesce(_double(col(f"e{r.index}")), zero.copy()),
                     rule_column("engagement", r.index)) for r in each if r.cap is None]
    if program_points is not None:
        clamped.append(_coalesce(_double(col("pp")), zero.copy()))
    engagement = _sum_of([engagement, *clamped])

    ranks: list[exp.Expr] = [exp.Literal.number(0)]
    has_back = bool(backs) or program_stage is not None
    if has_back or forward_ranks:
        back_time = exp.Sub(this=exp.IntDiv(this=col("back_key"),
                                            expression=exp.Literal.number(STAGE_BITS)),
                            expression=shift.copy())
        if has_back:
            ranks.append(_coalesce(exp.Sub(
                this=exp.Literal.number(STAGE_BITS - 1),
                expression=exp.Mod(this=col("back_key"),
                                   expression=exp.Literal.number(STAGE_BITS))),
                exp.Literal.number(0)))
        for rank in forward_ranks:
            seen = exp.not_(exp.Is(this=col(f"f{rank}"), expression=exp.Null()))
            after = seen if not has_back else and_(seen, or_(
                exp.Is(this=col("back_key"), expression=exp.Null()),
                exp.GT(this=col(f"f{rank}"), expression=back_time.copy())))
            ranks.append(_case([(after, exp.Literal.number(rank))], exp.Literal.number(0)))
    for stage in compiled.stages:
        if stage.when is not None:
            ranks.append(_case([(lead_condition(stage.when), exp.Literal.number(stage.rank))],
                               exp.Literal.number(0)))
    scored_columns = [
        col("lead_id"),
        _as(fit, "fit"),
        _as(engagement, "engagement"),
        _as(_case(disqualify) if disqualify else exp.cast(exp.Null(), "VARCHAR"),
            "disqualify_reason"),
        _as(_greatest(ranks), "rank"),
        _as(_bigint(_coalesce(col("buys"), exp.Literal.number(0))) if customers
            else _bigint(exp.Literal.number(0)), "purchases"),
        _as(col("first_buy") if customers else _bigint(exp.Null()), "customer_since"),
        _as(col("last_buy") if customers else _bigint(exp.Null()), "last_buy"),
        _as(col("spend") if customers else _double(exp.Null()), "spend"),
        *([col("k")] if lead_key is not None else []),
        *(per_rule if opts.rule_columns else []),
    ]
    scored = exp.select(*scored_columns).from_(_table("people"))
    if compiled.applies_to is not None:
        scored = scored.where(lead_condition(compiled.applies_to))

    # ---- graded: score, grade, disqualified, mql
    model_cfg = compiled.model
    fit_col, eng_col = col("fit"), col("engagement")
    score = exp.Add(this=fit_col.copy(), expression=eng_col.copy())
    grade: exp.Expr = exp.cast(exp.Null(), "VARCHAR")
    if compiled.grades:
        grade = _case([(exp.GTE(this=fit_col.copy(), expression=_double(number(minimum))),
                        text(letter)) for letter, minimum in compiled.grades], text("F"))
    disqualified = exp.not_(exp.Is(this=col("disqualify_reason"), expression=exp.Null()))
    mql: exp.Expr = exp.false()
    if model_cfg.thresholds.mql is not None:
        mql = and_(exp.Is(this=col("disqualify_reason"), expression=exp.Null()),
                   exp.GTE(this=exp.Paren(this=score.copy()),
                           expression=_double(number(model_cfg.thresholds.mql))))
        required = model_cfg.thresholds.mql_requires_grade
        if required is not None:
            mql = and_(mql, _coalesce(exp.LTE(this=col("grade"), expression=text(required)),
                                      exp.false()))
    graded = exp.select(
        exp.Star(), _as(_double(score), "score"), _as(disqualified, "disqualified"),
    ).from_(exp.select(exp.Star(), _as(grade, "grade")).from_(_table("scored"))
            .subquery("s", copy=False))
    graded = exp.select(exp.Star(), _as(mql, "mql")).from_(graded.subquery("g", copy=False))

    # ---- final: temperature, stage, tenure
    temperature: exp.Expr = _case([(col("disqualified"), text("dead"))],
                                  exp.cast(exp.Null(), "VARCHAR"))
    if model_cfg.temperature is not None:
        temperature = _case([
            (col("disqualified"), text("dead")),
            (exp.GTE(this=eng_col.copy(), expression=_double(number(model_cfg.temperature.hot))),
             text("hot")),
            (exp.GTE(this=eng_col.copy(), expression=_double(number(model_cfg.temperature.warm))),
             text("warm"))], text("cold"))
    stage_rank = _greatest([col("rank"), _case([(col("mql"), exp.Literal.number(MQL_RANK))],
                                               exp.Literal.number(0))])
    stage_name = exp.Case(this=stage_rank)
    for i, name in enumerate(STAGES):
        stage_name = stage_name.when(exp.Literal.number(i), text(name))
    tenure = _case([(exp.not_(exp.Is(this=col("customer_since"), expression=exp.Null())),
                     exp.Div(this=_double(exp.Paren(this=exp.Sub(
                         this=as_of.copy(), expression=col("customer_since")))),
                         expression=_double(exp.Literal.number(US_PER_DAY))))],
                   _double(exp.Null()))
    final = exp.select(
        col("lead_id"),
        _as(text(compiled.name), "model"),
        _as(_double(fit_col.copy()), "fit"),
        _as(_double(eng_col.copy()), "engagement"),
        col("score"),
        col("grade"),
        _as(temperature, "temperature"),
        _as(stage_name, "stage"),
        col("mql"),
        col("disqualified"),
        col("disqualify_reason"),
        col("purchases"),
        col("customer_since"),
        _as(tenure, "tenure_days"),
        # recency, frequency, monetary: null for a lead that never bought, as tenure
        _as(exp.Div(this=_double(exp.Paren(this=exp.Sub(this=as_of.copy(),
                                                        expression=col("last_buy")))),
                    expression=_double(exp.Literal.number(US_PER_DAY))), "recency_days"),
        _as(_case([(exp.GT(this=col("purchases"), expression=exp.Literal.number(0)),
                    col("purchases"))], _bigint(exp.Null())), "frequency"),
        _as(_case([(exp.not_(exp.Is(this=col("customer_since"), expression=exp.Null())),
                    _coalesce(_double(col("spend")), _double(exp.Literal.number(0))))],
                  _double(exp.Null())), "monetary"),
        _as(_bigint(as_of.copy()), "as_of"),
        *([col("k")] if lead_key is not None else []),
        *(col(c.alias) for c in (per_rule if opts.rule_columns else [])),
    ).from_(_table("graded"))
    if opts.order:
        final = final.order_by(col("lead_id"))
    return final.with_("ev", as_=ev).with_("agg", as_=agg).with_("people", as_=people) \
        .with_("scored", as_=scored).with_("graded", as_=graded)


def _latest(rule: EngagementRule) -> str:
    return f"l{rule.index}"


def _bucket_sums(grouped: Sequence[EngagementRule], flag: Callable[[EngagementRule], exp.Expr],
                 key_column: exp.Column, events_columns: Mapping[str, str], zone: str,
                 dialect: str, as_of_us: int, exact: exp.DataType) -> exp.Select:
    """Per lead key, `g<i>`: the decayed sum of bucketed rule i over its buckets' latest times.

    Rows of (key, l<i> per rule: the latest time of one bucket, or NULL) come from
      - one GROUP BY (key, day) for all `daily` rules without `distinct` (they share the
        model's time zone, so one day key serves them all) and one GROUP BY (key, week) for
        the `weekly` ones: integer keys, one row per lead and day rather than per rule;
      - one GROUP BY (key, rule, bucket, distinct values) for the rules with `distinct`.
    """
    ts = col("ts")
    null_time = exp.cast(exp.Null(), exp.DataType.Type.BIGINT)
    shared = {limit: [r for r in grouped if r.limit == limit and r.distinct is None]
              for limit in ("daily", "weekly")}
    rest = [r for r in grouped if r.limit not in shared or r.distinct is not None]
    parts: list[exp.Select] = []
    for rules in shared.values():
        if not rules:
            continue
        bucket = _bucket_keys(rules[0], events_columns, zone, dialect)[0]
        latest = {r.index: exp.Max(this=_case([(flag(r), ts.copy())])) for r in rules}
        parts.append(exp.select(key_column.copy(), *(
            _as(latest.get(r.index, null_time.copy()), _latest(r)) for r in grouped))
            .from_(_table("ev")).where(or_(*(flag(r) for r in rules)))
            .group_by(key_column.copy(), bucket))
    if rest:
        distinct_columns = sorted({r.distinct for r in rest
                                   if r.distinct is not None and r.distinct in events_columns})
        branches: list[exp.Select] = []
        for rule in rest:
            keys = _bucket_keys(rule, events_columns, zone, dialect)
            day: exp.Expr = exp.Literal.number(0)
            if rule.limit in ("daily", "weekly"):
                day = keys[0]
            values = [col(c) if c == rule.distinct else exp.cast(exp.Null(), _sql_type(
                events_columns[c])) for c in distinct_columns]
            branches.append(exp.select(
                key_column.copy(), _as(exp.Literal.number(rule.index), "r"), _as(day, "b"),
                *(_as(v, f"d{i}") for i, v in enumerate(values)), ts.copy(),
            ).from_(_table("ev")).where(flag(rule)))
        rows: exp.Query = branches[0]
        for branch in branches[1:]:
            rows = exp.union(rows, branch, distinct=False)
        latest_rows = exp.select(key_column.copy(), col("r"), _as(exp.Max(this=ts.copy()), "ts")) \
            .from_(rows.subquery("br", copy=False)) \
            .group_by(key_column.copy(), col("r"), col("b"),
                      *(col(f"d{i}") for i in range(len(distinct_columns))))
        parts.append(exp.select(key_column.copy(), *(
            _as(_case([(exp.EQ(this=col("r"), expression=exp.Literal.number(r.index)),
                        ts.copy())]) if r in rest else null_time.copy(), _latest(r))
            for r in grouped)).from_(latest_rows.subquery("bl", copy=False)))
    union: exp.Query = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False)

    def worth(rule: EngagementRule) -> exp.Expr:
        last = col(_latest(rule))
        value = _weighted(rule.points, _decay(last.copy(), as_of_us, rule.half_life_days))
        return exp.Sum(this=_case([(exp.not_(exp.Is(this=last, expression=exp.Null())),
                                    exp.cast(value, exact.copy()))]))

    return exp.select(key_column.copy(), *(_as(worth(r), f"g{r.index}") for r in grouped)) \
        .from_(union.subquery("bu", copy=False)).group_by(key_column.copy())


def back_key(ts: exp.Expr, backs: Sequence[StageRule], program_stage: bool,
             flag: Callable[[StageRule], exp.Expr] | None = None) -> exp.Expr:
    """Per event, `(ts + shift) · 8 + 7 − rank` of the lowest stage it moves back to (a
    `back: true` rule, or column `pst`: a program's `Lifecycle Stage Set`), else NULL: the
    MAX over a lead's events is its latest back event, ties going to the lowest stage.
    `flag`: whether an event matches a stage rule (default: its column `s<index>`)."""
    ranked = sorted(backs, key=lambda s: s.rank)
    hit = flag or (lambda stage: col(_stage_flag(stage.index)))
    rank: exp.Expr | None = _case([(hit(s), exp.Literal.number(s.rank))
                                   for s in ranked]) if ranked else None
    if program_stage:
        none = exp.Literal.number(STAGE_BITS)
        rank = col("pst") if rank is None else exp.Nullif(this=exp.Least(
            this=_coalesce(rank, none), expressions=[_coalesce(col("pst"), none.copy())]),
            expression=none.copy())
    assert rank is not None
    shifted = exp.Paren(this=exp.Add(this=ts, expression=exp.Literal.number(
        DAY_SHIFT * US_PER_DAY)))
    return exp.Sub(this=exp.Add(this=exp.Mul(this=shifted, expression=exp.Literal.number(
        STAGE_BITS)), expression=exp.Literal.number(STAGE_BITS - 1)), expression=rank)


def _sum_of(items: Sequence[exp.Expr]) -> exp.Expr:
    total = items[0]
    for item in items[1:]:
        total = exp.Add(this=total, expression=item)
    return total
