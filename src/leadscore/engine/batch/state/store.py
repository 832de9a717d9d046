"""Incremental batch: a compact per-lead, per-rule state on disk, so a daily run reads only the
events that arrived since the last one (`leadscore score … --state DIR`, DuckDB).

The state holds, for one model, what the batch plan's per-lead aggregate (`agg`) is made of,
relative to the reference time `ref` (the last run's `as_of`; see `engine.state` for the same
arithmetic in the incremental engine):

    leads.parquet    per lead: h<j> Σ points·2^((t − ref)/half-life j) of the uncapped rules where
                     every event counts, one per half-life; c<i> the same per capped rule;
                     g<i> the closed buckets of `daily`/`weekly` rule i; o<i> the latest time of
                     a `once` rule; pp the points programs added (model.program_events);
                     back_key, f<rank>, buys, first_buy, last_buy, spend (lifecycle, RFM)
    buckets.parquet  the open buckets (lead, rule, day/week, distinct value → latest time):
                     every bucket of `distinct`/`once`+`distinct` rules (per value), and for
                     `daily`/`weekly` rules those from the day before `ref` on (a later event
                     can still fall in them); older ones are closed, summed into g<i>
    meta.json        ref (the watermark), the model's fingerprint, the files read (size, mtime)

A run at `as_of` T ≥ ref rescales every sum by 2^((ref − T)/half-life) — exact — and folds in
the events of files it has not read (and those of files that held events after ref). Sums add,
latest times take the maximum, first purchases the minimum, buckets keep their latest time: every
event folds in exactly, in any order, except one kind of *late* event (older than ref, found in
a new file) of a `daily`/`weekly` rule whose bucket is already closed: those leads are
recomputed from all the files (a partial recompute). A changed or vanished file, a changed model
or T < ref rebuild the state from all files. Interest rules keep their own per-lead, per-topic
state beside it (engine.interest_state: interests.parquet, interest_buckets.parquet).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlglot import exp

from leadscore.engine.batch.schema import typed, with_profiles
from leadscore.engine.batch.state.interests import InterestFold
from leadscore.engine.sql.build import col
from leadscore.engine.sql.dialects import DuckDB
from leadscore.engine.sql.plan import PlanOptions, compile_plan
from leadscore.engine.sql.program_events import points_sql, stage_sql
from leadscore.engine.sql.purchases import purchase_value
from leadscore.engine.sql.semantics import back_key, bucket_day
from leadscore.engine.sql.semantics import matches as _matches
from leadscore.errors import EngineError
from leadscore.io import partitions
from leadscore.model.compiled import CUSTOMER_RANK, CompiledModel, EngagementRule, compile_model
from leadscore.model.interests import compile_interests
from leadscore.model.schema import Model
from leadscore.timeutil import US_PER_DAY

STATE_VERSION = 3      # 2: program points (pp) and stages (in back_key); 3: last_buy, spend


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _num(value: float) -> str:
    return repr(float(value))


@dataclass
class Layout:
    """The rule kinds of a model as the state keeps them (same split as the compiler's)."""

    compiled: CompiledModel
    half_lives: list[float | None] = field(default_factory=list)
    each: dict[float | None, list[EngagementRule]] = field(default_factory=dict)
    capped_each: list[EngagementRule] = field(default_factory=list)
    latest_only: list[EngagementRule] = field(default_factory=list)
    grouped: list[EngagementRule] = field(default_factory=list)

    @classmethod
    def of(cls, model: Model) -> Layout:
        compiled = compile_model(model)
        layout = cls(compiled)
        for rule in compiled.rules:
            if rule.limit == "once" and rule.distinct is None:
                layout.latest_only.append(rule)
            elif rule.bucketed:
                layout.grouped.append(rule)
            elif rule.cap is not None:
                layout.capped_each.append(rule)
            else:
                layout.each.setdefault(rule.half_life_days, []).append(rule)
        layout.half_lives = list(layout.each)
        return layout

    @property
    def stages(self) -> Any:
        return [s for s in self.compiled.stages if s.matcher is not None]

    def decay(self, ts: str, ref: int, half_life: float | None) -> str:
        if half_life is None:
            return "1.0"
        return f"pow(2.0, CAST({ts} - {ref} AS DOUBLE) / {_num(half_life * US_PER_DAY)})"

    def day_rules(self) -> list[EngagementRule]:
        return [r for r in self.grouped if r.limit in ("daily", "weekly")]

    def bucket_day(self, rule: EngagementRule, ts_sql: str) -> str:
        """SQL of the day/week number of rule's bucket for the instant `ts_sql`."""
        assert rule.limit is not None
        day = bucket_day(rule.limit, col("ts"), self.compiled.timezone, DuckDB())
        return day.sql(dialect="duckdb").replace('"ts"', f"({ts_sql})")


# ----------------------------------------------------------------------------- the fold

def _events_sql(layout: Layout, view: str, columns: dict[str, str], where: str) -> str:
    flags = [f"{_matches(r.matcher, columns).sql(dialect='duckdb')} AS m{r.index}"
             for r in layout.compiled.rules]
    flags += [f"{_matches(s.matcher, columns).sql(dialect='duckdb')} AS s{s.index}"
              for s in layout.stages]
    # Program events: always two columns (NULL where these files have none), so that every
    # fold has the same aggregates whatever columns its files have.
    points, stage = points_sql(columns, layout.compiled.name), stage_sql(columns,
                                                                        layout.compiled.name)
    flags.append(("CAST(NULL AS DOUBLE)" if points is None else points.sql(dialect="duckdb"))
                 + " AS pts")
    flags.append(("CAST(NULL AS INTEGER)" if stage is None else stage.sql(dialect="duckdb"))
                 + " AS pst")
    flags.append(purchase_value(columns).sql(dialect="duckdb") + " AS val")   # RFM monetary
    distinct = sorted({r.distinct for r in layout.grouped
                       if r.distinct is not None and r.distinct in columns})
    keep = ", ".join(_q(c) for c in ["lead_id", "ts", *distinct])
    return f"SELECT {', '.join([keep, *flags])} FROM {_q(view)} WHERE {where}"


def _fresh_sql(layout: Layout, ev: str, ref: int) -> str:
    """Per lead: the aggregates of events `ev`, sums relative to `ref`."""
    cols = ["lead_id"]
    for j, half_life in enumerate(layout.half_lives):
        terms = " + ".join(f"CASE WHEN m{r.index} THEN {_num(r.points)} ELSE 0.0 END"
                           for r in layout.each[half_life])
        cols.append(f"sum(({terms}) * {layout.decay('ts', ref, half_life)}) AS h{j}")
    for r in layout.capped_each:
        cols.append(f"sum(CASE WHEN m{r.index} THEN {_num(r.points)} * "
                    f"{layout.decay('ts', ref, r.half_life_days)} END) AS c{r.index}")
    cols += [f"CAST(NULL AS DOUBLE) AS g{r.index}" for r in layout.grouped]
    cols += [f"max(CASE WHEN m{r.index} THEN ts END) AS o{r.index}" for r in layout.latest_only]
    cols.append(f"sum(pts * {layout.decay('ts', ref, layout.compiled.program_half_life)}) "
                "AS pp")
    key = back_key(col("ts"), [s for s in layout.stages if s.back], True)
    cols.append(f"max({key.sql(dialect='duckdb')}) AS back_key")
    for rank in sorted({s.rank for s in layout.stages if not s.back}):
        hit = " OR ".join(f"s{s.index}" for s in layout.stages
                          if not s.back and s.rank == rank)
        cols.append(f"max(CASE WHEN {hit} THEN ts END) AS f{rank}")
    customers = " OR ".join(f"s{s.index}" for s in layout.stages if s.rank == CUSTOMER_RANK)
    if customers:
        cols += [f"sum(CASE WHEN {customers} THEN 1 ELSE 0 END) AS buys",
                 f"min(CASE WHEN {customers} THEN ts END) AS first_buy",
                 f"max(CASE WHEN {customers} THEN ts END) AS last_buy",
                 f"sum(CASE WHEN {customers} THEN val END) AS spend"]
    return f"SELECT {', '.join(cols)} FROM ({ev}) GROUP BY lead_id"


def _bucket_rows_sql(layout: Layout, ev: str, columns: dict[str, str]) -> str | None:
    parts = []
    for r in layout.grouped:
        day = layout.bucket_day(r, "ts") if r.limit in ("daily", "weekly") else "0"
        value = _distinct_text(r.distinct, columns[r.distinct]) if r.distinct is not None \
            and r.distinct in columns else "CAST(NULL AS VARCHAR)"
        parts.append(f"SELECT lead_id, {r.index} AS r, CAST({day} AS BIGINT) AS b, {value} AS d,"
                     f" ts FROM ({ev}) WHERE m{r.index}")
    return " UNION ALL ".join(parts) if parts else None


def _distinct_text(name: str, sql_type: str) -> str:
    """SQL for a `distinct` value as the text the saved buckets hold, the same for 5 and 5.0:
    one day's file may type a property BIGINT and the next day's DOUBLE (pandas writes an
    integer column with gaps as floats), and a full re-score, reading both as one column,
    counts them as one value."""
    value = _q(name)
    kind = sql_type.upper()
    if kind in ("DOUBLE", "FLOAT", "REAL") or kind.startswith("DECIMAL"):
        return (f"CASE WHEN {value} = trunc({value}) AND abs({value}) < 1e18 "
                f"THEN CAST(CAST({value} AS BIGINT) AS VARCHAR) "
                f"ELSE CAST({value} AS VARCHAR) END")
    return f"CAST({value} AS VARCHAR)"


def _closed_sql(layout: Layout, boundary: int | None) -> str:
    """SQL condition: a bucket row that no event after `boundary` can fall in."""
    if boundary is None:
        return "false"
    tests = [f"(r = {r.index} AND b < {layout.bucket_day(r, str(boundary - US_PER_DAY))})"
             for r in layout.day_rules()]
    return " OR ".join(tests) if tests else "false"


def _bucket_sums_sql(layout: Layout, source: str, ref: int) -> str:
    cols = ", ".join(f"sum(CASE WHEN r = {r.index} THEN {_num(r.points)} * "
                     f"{layout.decay('ts', ref, r.half_life_days)} END) AS g{r.index}"
                     for r in layout.grouped)
    return f"SELECT lead_id, {cols} FROM ({source}) GROUP BY lead_id"


def _combine_sql(layout: Layout, parts: list[str]) -> str:
    cols = ["lead_id"]
    cols += [f"sum(h{j}) AS h{j}" for j in range(len(layout.half_lives))]
    cols += [f"sum(c{r.index}) AS c{r.index}" for r in layout.capped_each]
    cols += [f"sum(g{r.index}) AS g{r.index}" for r in layout.grouped]
    cols += [f"max(o{r.index}) AS o{r.index}" for r in layout.latest_only]
    cols += ["sum(pp) AS pp", "max(back_key) AS back_key"]
    cols += [f"max(f{k}) AS f{k}" for k in sorted({s.rank for s in layout.stages
                                                   if not s.back})]
    if any(s.rank == CUSTOMER_RANK for s in layout.stages):
        cols += ["sum(buys) AS buys", "min(first_buy) AS first_buy",
                 "max(last_buy) AS last_buy", "sum(spend) AS spend"]
    union = " UNION ALL BY NAME ".join(f"SELECT * FROM ({p})" for p in parts)
    return f"SELECT {', '.join(cols)} FROM ({union}) GROUP BY lead_id"


def _rescaled_sql(layout: Layout, table: str, old_ref: int, ref: int) -> str:
    replace = [f"pp * {layout.decay(str(old_ref), ref, layout.compiled.program_half_life)} AS pp"]
    for j, half_life in enumerate(layout.half_lives):
        replace.append(f"h{j} * {layout.decay(str(old_ref), ref, half_life)} AS h{j}")
    for r in [*layout.capped_each, *layout.grouped]:
        name = f"c{r.index}" if r in layout.capped_each else f"g{r.index}"
        replace.append(f"{name} * {layout.decay(str(old_ref), ref, r.half_life_days)} AS {name}")
    return f"SELECT * REPLACE ({', '.join(replace)}) FROM {table}"


@dataclass
class State:
    """One model's state in a DuckDB connection: two tables, their reference time and the
    boundary before which daily/weekly buckets are closed (None: none closed)."""

    leads: str
    buckets: str | None
    ref: int
    boundary: int | None


def fold(con: duckdb.DuckDBPyConnection, layout: Layout, old: State | None, ev: str,
         columns: dict[str, str], ref: int, name: str, close: bool = True,
         later: int | None = None) -> State:
    """`old` (or nothing) with the events of query `ev` folded in, relative to `ref`
    (≥ old.ref); with `close`, the buckets no later event can reach are summed up — no event
    after `ref`, or, given `later`, no event at or after `later` (the earliest time still to
    be folded in)."""
    boundary: int | None = old.boundary if old is not None else None
    if close:
        boundary = ref if later is None else min(later, ref)
    fresh = _fresh_sql(layout, ev, ref)
    parts = [fresh]
    if old is not None:
        parts.append(_rescaled_sql(layout, old.leads, old.ref, ref))
    rows = _bucket_rows_sql(layout, ev, columns)
    buckets_name = None
    if rows is not None:
        con.sql(f"CREATE OR REPLACE TEMP TABLE {_q(name + '_new')} AS SELECT lead_id, r, b, d, "
                f"max(ts) AS ts FROM ({rows}) GROUP BY lead_id, r, b, d")
        if old is not None and old.buckets is not None:
            # Merged by a join, not one GROUP BY over old and new: the old buckets (every
            # lead's distinct values: tens of millions at a billion events) stream past the
            # new ones' hash table instead of all being held in one.
            con.sql(f"CREATE OR REPLACE TEMP TABLE {_q(name + '_all')} AS SELECT "
                    "coalesce(n.lead_id, o.lead_id) AS lead_id, coalesce(n.r, o.r) AS r, "
                    "coalesce(n.b, o.b) AS b, CASE WHEN n.lead_id IS NULL THEN o.d ELSE n.d END "
                    "AS d, CASE WHEN o.ts IS NULL OR n.ts > o.ts THEN n.ts ELSE o.ts END AS ts "
                    f"FROM {old.buckets} AS o FULL OUTER JOIN {_q(name + '_new')} AS n "
                    "ON o.lead_id = n.lead_id AND o.r = n.r AND o.b = n.b "
                    "AND o.d IS NOT DISTINCT FROM n.d")
            con.sql(f"DROP TABLE {_q(name + '_new')}")
        else:
            con.sql(f"ALTER TABLE {_q(name + '_new')} RENAME TO {_q(name + '_all')}")
        closed = _closed_sql(layout, boundary if close else None)
        if closed != "false":
            parts.append(_bucket_sums_sql(
                layout, f"SELECT * FROM {_q(name + '_all')} WHERE {closed}", ref))
        buckets_name = _q(name + "_buckets")
        con.sql(f"CREATE OR REPLACE TEMP TABLE {buckets_name} AS SELECT * FROM "
                f"{_q(name + '_all')} WHERE NOT ({closed})")
    leads = _q(name + "_leads")
    con.sql(f"CREATE OR REPLACE TEMP TABLE {leads} AS {_combine_sql(layout, parts)}")
    con.sql(f"DROP TABLE IF EXISTS {_q(name + '_all')}")
    return State(leads, buckets_name, ref, boundary)


def late_leads_sql(layout: Layout, ev: str, state: State) -> str | None:
    """Leads with an event in `ev` that falls in a bucket `state` has already closed."""
    if state.boundary is None or not layout.day_rules():
        return None
    tests = " OR ".join(
        f"(m{r.index} AND {layout.bucket_day(r, 'ts')} < "
        f"{layout.bucket_day(r, str(state.boundary - US_PER_DAY))})" for r in layout.day_rules())
    return f"SELECT DISTINCT lead_id FROM ({ev}) WHERE ts <= {state.boundary} AND ({tests})"


# ----------------------------------------------------------------------------- scores

def agg_sql(layout: Layout, state: State, names: list[str]) -> str:
    """The plan's per-lead aggregate (`names`, the compiler's `agg` columns) from a state
    whose ref is the scoring time."""
    open_sums = _bucket_sums_sql(layout, f"SELECT * FROM {state.buckets}", state.ref) \
        if state.buckets is not None else None
    cols = []
    for name in names:
        if name == "lead_id":
            cols.append("s.lead_id")
        elif name == "v":
            cols.append(" + ".join(f"coalesce(s.h{j}, 0.0)"
                                   for j in range(len(layout.half_lives))) + " AS v")
        elif name.startswith("g") and open_sums is not None:
            cols.append(f"coalesce(s.{name}, 0.0) + coalesce(q.{name}, 0.0) AS {name}")
        elif name in ("pp", "back_key", "buys", "first_buy", "last_buy", "spend") \
                or name[0] in "cgof":
            cols.append(f"s.{_q(name)}")
        else:
            raise EngineError(f"state: the plan's aggregate {name!r} is not kept in the state")
    join = f" LEFT JOIN ({open_sums}) AS q ON s.lead_id = q.lead_id" if open_sums else ""
    return f"SELECT {', '.join(cols)} FROM {state.leads} AS s{join}"


def scores_from_state(con: duckdb.DuckDBPyConnection, model: Model, layout: Layout,
                      state: State, events_columns: dict[str, str], leads_name: str | None,
                      leads_columns: dict[str, str] | None) -> pa.Table:
    """The batch plan's output at state.ref, its per-lead aggregate taken from the state."""
    plan = compile_plan(model, events_columns, leads_columns, state.ref,
                        options=PlanOptions(events_table="__unused", leads_table=leads_name))
    ctes = plan.args["with_"].expressions
    agg = next(c for c in ctes if c.alias == "agg")
    names = list(agg.this.named_selects)
    agg_name = f"{state.leads.strip(chr(34))}_agg"
    con.sql(f"CREATE OR REPLACE TEMP VIEW {_q(agg_name)} AS {agg_sql(layout, state, names)}")
    plan.args["with_"].set("expressions", [c for c in ctes if c.alias not in ("ev", "agg")])
    for table in plan.find_all(exp.Table):
        if table.name == "agg":
            table.set("this", exp.to_identifier(agg_name, quoted=True))
    return typed(con.sql(plan.sql(dialect="duckdb")).to_arrow_table())


# ----------------------------------------------------------------------------- on disk

def fingerprint(model: Model) -> str:
    text = json.dumps(model.model_dump(mode="json", exclude={"tests", "source"}),
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class RunReport:
    """What an incremental run did."""

    mode: str                 # "incremental" | "rebuild"
    reason: str
    files_read: int
    late_leads: int = 0


def score_with_state(model: Model, events: str, leads: str | None, as_of_us: int,
                     state_dir: str | Path, con: duckdb.DuckDBPyConnection,
                     step: Callable[[str, int, int], None] | None = None
                     ) -> tuple[pa.Table, RunReport]:
    """Score `model` at `as_of_us` from the state in `state_dir` plus the events files it has
    not read; the state is then saved for the next run. `events` is a file, folder or glob."""
    layout = Layout.of(model)
    folder = Path(state_dir) / model.name
    meta_path = folder / "meta.json"
    meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    files = partitions.list_files(events)
    signatures = {f: partitions.signature(f) for f in files}
    seen: dict[str, list[int]] = meta.get("files", {})
    reason = ""
    if not meta:
        reason = "no state yet"
    elif meta.get("version") != STATE_VERSION or meta.get("model") != fingerprint(model):
        reason = "the model changed"
    elif as_of_us < meta["ref"]:
        reason = "--as-of is before the state's watermark"
    elif any(signatures.get(f) != sig for f, sig in seen.items()):
        reason = "a file read before changed or is gone"
    leads_name = None
    leads_columns = None
    if leads is not None:
        from leadscore.io.readers import read_leads

        leads_name = f"__state_leads_{model.name}"
        read_leads(leads, con, name=leads_name)
        leads_columns = _columns(con, leads_name)
    prefix = f"__state_{abs(hash(model.name)) % 10**8}"
    interests = InterestFold(con, model, prefix) if compile_interests(model) else None
    if reason:
        state, columns = _rebuild(con, layout, files, as_of_us, prefix, step, interests)
        report = RunReport("rebuild", reason, len(files))
    else:
        state, columns, report = _advance(con, layout, meta, folder, files, as_of_us, prefix,
                                          step, interests)
    scores = scores_from_state(con, model, layout, state, columns, leads_name, leads_columns)
    scores = with_profiles(scores, interests.profiles() if interests is not None else {})
    pending = _pending(con, files if reason else [*_new_files(seen, files), *meta.get(
        "pending", [])], as_of_us)
    _save(con, state, folder, {"version": STATE_VERSION, "model": fingerprint(model),
                               "ref": as_of_us, "files": signatures, "pending": pending,
                               "columns": columns}, interests)
    return scores, report


def _columns(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, str]:
    rel = con.sql(f"SELECT * FROM {_q(name)} LIMIT 0")
    return {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}


def _new_files(seen: dict[str, list[int]], files: list[str]) -> list[str]:
    return [f for f in files if f not in seen]


def _rebuild(con: duckdb.DuckDBPyConnection, layout: Layout, files: list[str], as_of_us: int,
             prefix: str, step: Callable[[str, int, int], None] | None,
             interests: InterestFold | None) -> tuple[State, dict[str, str]]:
    """The state from every file, one partition at a time. After each partition the buckets
    that no event of the partitions still to come can fall in are closed (summed up): with
    partitions in time order (month=…) the open buckets stay a few days' worth instead of
    the whole history, which a billion events would otherwise spill to disk on every fold."""
    groups = sorted(partitions.partitions(files).items())
    views = [partitions.read_event_files(group, con, f"{prefix}_ev{done}")
             for done, (_, group) in enumerate(groups)]
    earliest = [con.sql(f"SELECT min(ts) FROM {_q(view)}").fetchall()[0][0] for view in views]
    state: State | None = None
    columns: dict[str, str] = {}
    for done, ((key, _), view) in enumerate(zip(groups, views, strict=True)):
        if step:
            step(key or "events", done, len(groups))
        part_columns = _columns(con, view)
        columns.update(part_columns)
        ev = _events_sql(layout, view, part_columns, f"ts <= {as_of_us}")
        later = min((t for t in earliest[done + 1:] if t is not None), default=None)
        state = fold(con, layout, state, ev, part_columns, as_of_us, f"{prefix}_p{done % 2}",
                     later=later)
        if interests is not None:
            interests.fold(view, part_columns, f"ts <= {as_of_us}", as_of_us)
    if step:
        step("state", len(groups), len(groups))
    assert state is not None
    return state, columns


def _advance(con: duckdb.DuckDBPyConnection, layout: Layout, meta: dict[str, Any], folder: Path,
             files: list[str], as_of_us: int, prefix: str,
             step: Callable[[str, int, int], None] | None, interests: InterestFold | None
             ) -> tuple[State, dict[str, str], RunReport]:
    old_ref = int(meta["ref"])
    if interests is not None:
        interests.load(folder, old_ref)
    con.sql(f"CREATE OR REPLACE TEMP TABLE {_q(prefix + '_old_leads')} AS "
            f"SELECT * FROM read_parquet({_lit(folder / 'leads.parquet')})")
    buckets = None
    if (folder / "buckets.parquet").exists():
        buckets = _q(prefix + "_old_buckets")
        # a view: the old buckets are read once, by the fold's join, not copied in first
        con.sql(f"CREATE OR REPLACE TEMP VIEW {buckets} AS "
                f"SELECT * FROM read_parquet({_lit(folder / 'buckets.parquet')})")
    old = State(_q(prefix + "_old_leads"), buckets, old_ref, meta.get("boundary", old_ref))
    new_files = _new_files(meta["files"], files)
    pending = [f for f in meta.get("pending", []) if f in files]
    columns: dict[str, str] = dict(meta.get("columns", {}))
    parts = []
    if step:
        step(f"{len(new_files)} new files", 0, 1)
    for kind, group, where in (("new", new_files, f"ts <= {as_of_us}"),
                               ("pending", pending, f"ts > {old_ref} AND ts <= {as_of_us}")):
        if group:
            view = partitions.read_event_files(group, con, f"{prefix}_{kind}")
            part_columns = _columns(con, view)
            columns.update(part_columns)
            parts.append(_events_sql(layout, view, part_columns, where))
            if interests is not None:   # exact in any order: no late-event special case
                interests.fold(view, part_columns, where, as_of_us)
    if interests is not None and not parts:
        interests.fold(None, columns, "false", as_of_us)
    report = RunReport("incremental", "", len(new_files) + len(pending))
    if not parts:
        state = fold(con, layout, old, _empty_events(layout, columns), columns, as_of_us,
                     prefix + "_s")
        return state, columns, report
    ev = " UNION ALL BY NAME ".join(f"SELECT * FROM ({p})" for p in parts)
    con.sql(f"CREATE OR REPLACE TEMP TABLE {_q(prefix + '_fold')} AS {ev}")
    ev = f"SELECT * FROM {_q(prefix + '_fold')}"
    late = late_leads_sql(layout, ev, old)
    late_count = 0
    if late is not None:
        con.sql(f"CREATE OR REPLACE TEMP TABLE {_q(prefix + '_late')} AS {late}")
        [(late_count,)] = con.sql(f"SELECT count(*) FROM {_q(prefix + '_late')}").fetchall()
    if not late_count:
        state = fold(con, layout, old, ev, columns, as_of_us, prefix + "_s")
        return state, columns, report
    # Partial recompute: the late leads from every file; everyone else folds as usual.
    not_late = f"lead_id NOT IN (SELECT lead_id FROM {_q(prefix + '_late')})"
    con.sql(f"CREATE OR REPLACE TEMP TABLE {_q(prefix + '_keep_leads')} AS "
            f"SELECT * FROM {old.leads} WHERE {not_late}")
    kept = State(_q(prefix + "_keep_leads"), None, old.ref, old.boundary)
    if old.buckets is not None:
        con.sql(f"CREATE OR REPLACE TEMP TABLE {_q(prefix + '_keep_buckets')} AS "
                f"SELECT * FROM {old.buckets} WHERE {not_late}")
        kept.buckets = _q(prefix + "_keep_buckets")
    others = fold(con, layout, kept, f"SELECT * FROM ({ev}) WHERE {not_late}", columns,
                  as_of_us, prefix + "_s")
    everything = partitions.read_event_files(files, con, f"{prefix}_all")
    all_columns = _columns(con, everything)
    redo = fold(con, layout, None, _events_sql(
        layout, everything, all_columns, f"ts <= {as_of_us} AND lead_id IN (SELECT lead_id FROM "
        f"{_q(prefix + '_late')})"), all_columns, as_of_us, prefix + "_r")
    con.sql(f"INSERT INTO {others.leads} BY NAME SELECT * FROM {redo.leads}")
    if redo.buckets is not None and others.buckets is not None:
        con.sql(f"INSERT INTO {others.buckets} SELECT * FROM {redo.buckets}")
    report.late_leads = late_count
    report.reason = f"{late_count} leads recomputed for late events"
    return others, columns, report


def _empty_events(layout: Layout, columns: dict[str, str]) -> str:
    flags = [f"false AS m{r.index}" for r in layout.compiled.rules]
    flags += [f"false AS s{s.index}" for s in layout.stages]
    flags += ["CAST(NULL AS DOUBLE) AS pts", "CAST(NULL AS INTEGER) AS pst",
              "CAST(NULL AS DOUBLE) AS val"]
    distinct = sorted({r.distinct for r in layout.grouped
                       if r.distinct is not None and r.distinct in columns})
    values = [f"CAST(NULL AS VARCHAR) AS {_q(c)}" for c in distinct]
    return (f"SELECT * FROM (SELECT CAST(NULL AS VARCHAR) AS lead_id, CAST(NULL AS BIGINT) AS ts"
            f"{''.join(', ' + v for v in values)}, {', '.join(flags)}) WHERE false")


def _pending(con: duckdb.DuckDBPyConnection, read: list[str], as_of_us: int) -> list[str]:
    """The files just read that hold events after as_of (read again next time)."""
    if not read:
        return []
    view = partitions.read_event_files(read, con, "__state_pending")
    [(later,)] = con.sql(f"SELECT count(*) FROM {_q(view)} WHERE ts > {as_of_us}").fetchall()
    return sorted(read) if later else []


def _lit(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _save(con: duckdb.DuckDBPyConnection, state: State, folder: Path,
          meta: dict[str, Any], interests: InterestFold | None = None) -> None:
    """Write the state next to the old one, then swap it in (a crash leaves the old one)."""
    staging = folder.with_name(folder.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    con.sql(f"COPY {state.leads} TO {_lit(staging / 'leads.parquet')} (FORMAT parquet)")
    if state.buckets is not None:
        con.sql(f"COPY {state.buckets} TO {_lit(staging / 'buckets.parquet')} (FORMAT parquet)")
    if interests is not None:
        interests.save(staging)
    meta["boundary"] = state.boundary
    (staging / "meta.json").write_text(json.dumps(meta))
    if folder.exists():
        old = folder.with_name(folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        folder.rename(old)
        staging.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(folder)
