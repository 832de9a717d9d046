"""Incremental batch: a compact per-lead, per-rule state on disk, so a daily run reads only the
events that arrived since the last one (`leadscore score … --state DIR`, on DuckDB or Spark:
`state.runner`).

The state holds, for one model, what the batch plan's per-lead aggregate (`agg`) is made of,
relative to the reference time `ref` (the last run's `as_of`; see
`engine.incremental.rule_state` for the same arithmetic in the incremental engine; `fold` for
the columns):

    leads.parquet    per lead: the decayed sums, latest times and lifecycle marks
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
state beside it (`state.interests`: interests.parquet, interest_buckets.parquet).

The scores are the plan's own stages (`people`, `scored`, `graded`, `final`) composed on the
state's `agg` (`fold.aggregate`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlglot import exp

from leadscore.engine.batch.filters import (
    EMAIL_COLUMNS,
    lead_verdicts,
    ordered,
    warn_filtered,
)
from leadscore.engine.batch.schema import typed, with_profiles
from leadscore.engine.batch.state import fold
from leadscore.engine.batch.state.fold import Layout, State
from leadscore.engine.batch.state.interests import InterestFold
from leadscore.engine.batch.state.runner import Runner, runner_for
from leadscore.engine.sql.build import col, table
from leadscore.engine.sql.plan import STAGES, PlanOptions, Scope, Stage, compose
from leadscore.engine.sql.plan import aggregate as plan_aggregate
from leadscore.filters import Filters
from leadscore.io import partitions
from leadscore.model.interests import compile_interests
from leadscore.model.schema import Model

STATE_VERSION = 4      # 2: program points (pp) and stages (in back_key); 3: last_buy, spend;
#                        4: sales' stages (ranks moved, STAGE_BITS 16)


def _ts_until(as_of_us: int) -> exp.Expr:
    return exp.LTE(this=col("ts"), expression=exp.Literal.number(as_of_us))


def _all(name: str) -> exp.Select:
    return exp.select(exp.Star()).from_(table(name))


# ----------------------------------------------------------------------------- the fold

def fold_in(con: Runner, layout: Layout, old: State | None, ev: exp.Query,
            columns: dict[str, str], ref: int, name: str, close: bool = True,
            later: int | None = None) -> State:
    """`old` (or nothing) with the events of query `ev` folded in, relative to `ref`
    (≥ old.ref); with `close`, the buckets no later event can reach are summed up — no event
    after `ref`, or, given `later`, no event at or after `later` (the earliest time still to
    be folded in)."""
    boundary: int | None = old.boundary if old is not None else None
    if close:
        boundary = ref if later is None else min(later, ref)
    parts: list[exp.Select] = [fold.fresh(layout, ev, ref)]
    if old is not None:
        parts.append(fold.rescaled(layout, old.leads, list(con.columns(old.leads)), old.ref,
                                   ref))
    rows = fold.bucket_rows(layout, ev, columns)
    buckets_name = None
    if rows is not None:
        every = con.create(name + "_new", fold.latest_per_bucket(rows))
        if old is not None and old.buckets is not None:
            every = con.create(name + "_all", fold.merged_buckets(old.buckets, every))
            con.drop(name + "_new")
        else:
            con.rename(every, name + "_all")
            every = name + "_all"
        done = fold.closed(layout, boundary if close else None)
        still_open = _all(every)
        if done is not None:
            parts.append(fold.bucket_sums(layout, _all(every).where(done), ref))
            still_open = still_open.where(exp.not_(exp.Paren(this=done.copy())))
        buckets_name = con.create(name + "_buckets", still_open)
    leads = con.create(name + "_leads", fold.combine(layout, parts))
    con.drop(name + "_all")
    return State(leads, buckets_name, ref, boundary)


# ----------------------------------------------------------------------------- scores

def scores_from_state(con: Runner, model: Model, layout: Layout,
                      state: State, events_columns: dict[str, str], leads_name: str | None,
                      leads_columns: dict[str, str] | None) -> pa.Table:
    """The batch plan's output at state.ref: its stages after `agg`, on the state's `agg`."""
    scope = Scope.of(layout.compiled, events_columns, leads_columns, state.ref,
                     PlanOptions(leads_table=leads_name, dialect=con.dialect.NAME))
    agg = fold.aggregate(layout, state, plan_aggregate.columns(scope))
    after = next(i for i, stage in enumerate(STAGES) if stage.name == "agg") + 1
    plan = compose(scope, (Stage("agg", lambda _: agg), *STAGES[after:]))
    return typed(con.arrow(plan))


# ----------------------------------------------------------------------------- filters

def filters_key(filters: Filters) -> str:
    """What a state remembers of the filters it was folded with: other filters, a rebuild."""
    return filters.model_dump_json()


def caught_leads(con: Runner, leads: tuple[str, dict[str, str]] | None, filters: Filters
                 ) -> dict[str, str]:
    """The leads the filters on leads catch now (lead_id → filter): `leads` is the leads
    table and its columns (its `traits.email` or `email`), None for none."""
    if not (filters.lead_ids or filters.internal_domains):
        return {}
    rows: list[tuple[Any, Any]] = []
    if leads is not None:
        email = next((c for c in EMAIL_COLUMNS if c in leads[1]), None)
        found = con.arrow(exp.select(col("lead_id"), col(email) if email else exp.null())
                          .from_(table(leads[0])))
        rows = [tuple(r.values()) for r in found.to_pylist()]
    caught = lead_verdicts(rows, filters)
    return dict(zip(caught["lead_id"], caught["filter"], strict=True))


def report_filtered(source: str, counts: dict[str, int]) -> None:
    """The `FilteredEventsWarning` of a `--state` run: every event of the state's input a
    filter caught, as one run over all of it would count them."""
    if counts:
        warn_filtered(source, ordered(counts), stacklevel=4)


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
                     state_dir: str | Path, con: Any,
                     step: Callable[[str, int, int], None] | None = None,
                     filters: Filters | None = None) -> tuple[pa.Table, RunReport]:
    """Score `model` at `as_of_us` from the state in `state_dir` plus the events files it has
    not read; the state is then saved for the next run. `events` is a file, folder or glob;
    `con` a DuckDB connection or a SparkSession (with `engine.batch.spark.settings` in force):
    the same state, the same scores. The events `filters` catch (default `Filters()`) are left
    out as by `score_many`; the leads table is given each run, so when the leads its filters
    catch change, the state is rebuilt."""
    con = runner_for(con)
    filters = filters if filters is not None else Filters()
    layout = Layout.of(model, con.dialect)
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
        leads_name, leads_columns = con.leads(leads, f"__state_leads_{model.name}")
    with_leads = (leads_name, leads_columns or {}) if leads_name is not None else None
    caught = caught_leads(con, with_leads, filters)
    if not reason and meta.get("filters") != filters_key(filters):
        reason = "the filters changed"
    elif not reason and meta.get("caught", {}) != caught:
        reason = "the leads the filters catch changed"
    counts: Counter[str] = Counter()

    def kept_events(group: list[str], name: str, count: bool = True) -> str:
        """The canonical events of `group`, those the filters catch left out (counted)."""
        view, found = con.kept(con.event_files(group, name), with_leads, filters)
        if count:
            counts.update(found)
        return view

    prefix = f"__state_{abs(hash(model.name)) % 10**8}"
    interests = InterestFold(con, model, prefix) if compile_interests(model) else None
    if reason:
        state, columns = _rebuild(con, layout, files, as_of_us, prefix, step, interests,
                                  kept_events)
        report = RunReport("rebuild", reason, len(files))
    else:
        counts.update(meta.get("filtered", {}))
        state, columns, report = _advance(con, layout, meta, folder, files, as_of_us, prefix,
                                          step, interests, kept_events)
    scores = scores_from_state(con, model, layout, state, columns, leads_name, leads_columns)
    scores = with_profiles(scores, interests.profiles() if interests is not None else {})
    pending = _pending(con, files if reason else [*_new_files(seen, files), *meta.get(
        "pending", [])], as_of_us)
    save_state(con, state, folder, {"version": STATE_VERSION, "model": fingerprint(model),
                               "ref": as_of_us, "files": signatures, "pending": pending,
                               "columns": columns, "filters": filters_key(filters),
                               "caught": caught, "filtered": dict(counts)}, interests)
    report_filtered(str(events), dict(counts))
    return scores, report


def _new_files(seen: dict[str, list[int]], files: list[str]) -> list[str]:
    return [f for f in files if f not in seen]


Kept = Callable[..., str]    # (files, view name, count=True) → their kept canonical events


def _rebuild(con: Runner, layout: Layout, files: list[str], as_of_us: int,
             prefix: str, step: Callable[[str, int, int], None] | None,
             interests: InterestFold | None, kept_events: Kept
             ) -> tuple[State, dict[str, str]]:
    """The state from every file, one partition at a time. After each partition the buckets
    that no event of the partitions still to come can fall in are closed (summed up): with
    partitions in time order (month=…) the open buckets stay a few days' worth instead of
    the whole history, which a billion events would otherwise spill to disk on every fold."""
    groups = sorted(partitions.partitions(files).items())
    views = [kept_events(group, f"{prefix}_ev{done}")
             for done, (_, group) in enumerate(groups)]
    earliest = [con.scalar(exp.select(exp.Min(this=col("ts"))).from_(table(view)))
                for view in views]
    state: State | None = None
    columns: dict[str, str] = {}
    for done, ((key, _), view) in enumerate(zip(groups, views, strict=True)):
        if step:
            step(key or "events", done, len(groups))
        part_columns = con.columns(view)
        columns.update(part_columns)
        ev = fold.events(layout, view, part_columns, _ts_until(as_of_us))
        later = min((t for t in earliest[done + 1:] if t is not None), default=None)
        state = fold_in(con, layout, state, ev, part_columns, as_of_us,
                        f"{prefix}_p{done % 2}", later=later)
        if interests is not None:
            interests.fold(view, part_columns, _ts_until(as_of_us), as_of_us)
    if step:
        step("state", len(groups), len(groups))
    assert state is not None
    return state, columns


def _advance(con: Runner, layout: Layout, meta: dict[str, Any], folder: Path,
             files: list[str], as_of_us: int, prefix: str,
             step: Callable[[str, int, int], None] | None, interests: InterestFold | None,
             kept_events: Kept) -> tuple[State, dict[str, str], RunReport]:
    old_ref = int(meta["ref"])
    if interests is not None:
        interests.load(folder, old_ref)
    old_leads = con.load(prefix + "_old_leads", folder / "leads.parquet")
    buckets = None
    if (folder / "buckets.parquet").exists():
        # a view: the old buckets are read once, by the fold's join, not copied in first
        buckets = con.load(prefix + "_old_buckets", folder / "buckets.parquet", kind="VIEW")
    old = State(old_leads, buckets, old_ref, meta.get("boundary", old_ref))
    new_files = _new_files(meta["files"], files)
    pending = [f for f in meta.get("pending", []) if f in files]
    columns: dict[str, str] = dict(meta.get("columns", {}))
    parts: list[exp.Select] = []
    if step:
        step(f"{len(new_files)} new files", 0, 1)
    after_ref = exp.GT(this=col("ts"), expression=exp.Literal.number(old_ref))
    for kind, group, where in (("new", new_files, _ts_until(as_of_us)),
                               ("pending", pending, exp.and_(after_ref,
                                                             _ts_until(as_of_us)))):
        if group:
            # a pending file's events were counted when it was new
            view = kept_events(group, f"{prefix}_{kind}", kind == "new")
            part_columns = con.columns(view)
            columns.update(part_columns)
            parts.append(fold.events(layout, view, part_columns, where))
            if interests is not None:   # exact in any order: no late-event special case
                interests.fold(view, part_columns, where, as_of_us)
    if interests is not None and not parts:
        interests.fold(None, columns, exp.false(), as_of_us)
    report = RunReport("incremental", "", len(new_files) + len(pending))
    if not parts:
        state = fold_in(con, layout, old, fold.no_events(layout, columns), columns, as_of_us,
                        prefix + "_s")
        return state, columns, report
    folded = con.create(prefix + "_fold", fold.union_by_name(parts))
    ev = _all(folded)
    late = fold.late_leads(layout, ev, old)
    late_count = 0
    if late is not None:
        late_name = con.create(prefix + "_late", late)
        late_count = con.scalar(exp.select(exp.Count(this=exp.Star())).from_(
            table(late_name)))
    if not late_count:
        state = fold_in(con, layout, old, ev, columns, as_of_us, prefix + "_s")
        return state, columns, report
    # Partial recompute: the late leads from every file; everyone else folds as usual.
    late_ids = exp.select(col("lead_id")).from_(table(prefix + "_late"))
    not_late = exp.not_(col("lead_id").isin(query=late_ids.copy()))
    kept = State(con.create(prefix + "_keep_leads", _all(old.leads).where(not_late)), None,
                 old.ref, old.boundary)
    if old.buckets is not None:
        kept.buckets = con.create(prefix + "_keep_buckets",
                                  _all(old.buckets).where(not_late.copy()))
    others = fold_in(con, layout, kept, _all(folded).where(not_late.copy()), columns, as_of_us,
                     prefix + "_s")
    everything = kept_events(files, f"{prefix}_all", False)
    all_columns = con.columns(everything)
    redo = fold_in(con, layout, None, fold.events(layout, everything, all_columns, exp.and_(
        _ts_until(as_of_us), col("lead_id").isin(query=late_ids.copy()))), all_columns,
        as_of_us, prefix + "_r")
    con.append(others.leads, redo.leads)
    if redo.buckets is not None and others.buckets is not None:
        con.append(others.buckets, redo.buckets)
    report.late_leads = late_count
    report.reason = f"{late_count} leads recomputed for late events"
    return others, columns, report


def _pending(con: Runner, read: list[str], as_of_us: int) -> list[str]:
    """The files just read that hold events after as_of (read again next time)."""
    if not read:
        return []
    view = con.event_files(read, "__state_pending")
    later = con.scalar(exp.select(exp.Count(this=exp.Star())).from_(table(view)).where(
        exp.GT(this=col("ts"), expression=exp.Literal.number(as_of_us))))
    return sorted(read) if later else []


def save_state(con: Runner, state: State, folder: Path, meta: dict[str, Any],
               interests: InterestFold | None = None,
               tables: dict[str, str] | None = None) -> None:
    """Write the state next to the old one, then swap it in (a crash leaves the old one);
    `tables`: more tables of `con` to keep in it (file name → table)."""
    staging = folder.with_name(folder.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    con.save(state.leads, staging / "leads.parquet")
    for file, name in (tables or {}).items():
        con.save(name, staging / file)
    if state.buckets is not None:
        con.save(state.buckets, staging / "buckets.parquet")
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
