"""`--state` over a Segment message stream: `leadscore score --events day1.jsonl --state DIR`,
then `--events day2.jsonl --state DIR` scores exactly as one run over both days.

A stream is a history: a later identify or alias moves events already folded under an
anonymous id to the person, and traits hold point in time. So the state keeps, beside the
per-lead fold of event tables (`state.store`), the messages themselves (`state.history`) and
the identities as of its watermark (`ids.parquet`: ident → lead_id). The messages are kept
once per state folder, for every model (`_messages/`: a model added later folds the whole
history). A run:

1. adds the new files' messages to the history (a file read before is skipped; a repeat of a
   kept messageId at or after the kept copy's time is dropped: the earliest counts);
2. runs the stream stage as of T over the identify, alias and group messages and one stand-in
   per identity — identities, leads with their point-in-time traits, accounts;
3. folds: the leads an identity left or joined since the watermark (`history.moved`) and the
   leads with a late event in a closed daily/weekly bucket (as for event tables) are folded
   anew from the history; every other lead folds in the events it has not folded (those of
   the new files, and kept ones after the watermark) exactly as `state.store` does.

Everything else rebuilds the fold from the history (no state yet — a model added later
too —, a changed model, T before the watermark, a message that came again earlier than its
kept copy): the history, not the files, is the source — each run may name only its own day's
file. A file read before that
changed is read anew with every other file the history came from, if they are all given; else
it is an error (the state cannot take back what it read).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute
from sqlglot import exp

from leadscore.engine.batch.inputs import warn_rejected
from leadscore.engine.batch.schema import ACCOUNT_SCHEMA, account_table, with_profiles
from leadscore.engine.batch.state import fold
from leadscore.engine.batch.state.fold import Layout, State
from leadscore.engine.batch.state.history import History, events, moved
from leadscore.engine.batch.state.interests import InterestFold
from leadscore.engine.batch.state.runner import Runner, runner_for
from leadscore.engine.batch.state.store import (
    STATE_VERSION,
    RunReport,
    caught_leads,
    filters_key,
    fingerprint,
    fold_in,
    report_filtered,
    save_state,
    scores_from_state,
)
from leadscore.engine.sql.account_plan import compile_account_plan
from leadscore.engine.sql.build import col, table
from leadscore.filters import Filters
from leadscore.io.readers import source_files
from leadscore.model.accounts import compile_account
from leadscore.model.interests import compile_interests
from leadscore.model.schema import Model

IDS_FILE = "ids.parquet"
MESSAGES = "_messages"        # the kept messages' folder in the state folder


def _until(as_of_us: int) -> exp.Expr:
    return exp.LTE(this=col("ts"), expression=exp.Literal.number(as_of_us))


def _of(name: str) -> exp.Select:
    return exp.select(exp.Star()).from_(table(name))


def score_stream_with_state(model: Model, events_source: str, leads: str | None,
                            as_of_us: int, state_dir: str | Path, con: Any,
                            step: Callable[[str, int, int], None] | None = None,
                            filters: Filters | None = None) -> tuple[pa.Table, RunReport]:
    """Score `model` at `as_of_us` from the state in `state_dir` plus the messages of the
    stream files `events_source` (a file or glob) it has not read; the state is then saved.
    `leads`: a leads table beside the stream (its base: no history). `con`: a DuckDB
    connection or a SparkSession (with `engine.batch.spark.settings` in force). The events
    `filters` catch (default `Filters()`) are left out as by `score_many`; a lead the filters
    on leads catch or let go since the last run is folded anew, like one whose identities
    moved."""
    con = runner_for(con)
    filters = filters if filters is not None else Filters()
    layout = Layout.of(model, con.dialect)
    folder = Path(state_dir) / model.name
    meta_path = folder / "meta.json"
    meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    prefix = f"__sstate_{abs(hash(model.name)) % 10**8}"
    history = History(con, Path(state_dir) / MESSAGES, prefix)
    _, files = source_files(events_source)
    before = set(history.meta["files"])
    if step:
        step("reading the new messages", 0, 2)
    rejected = history.add(files)   # a no-op for a run's second model: the files are kept
    if rejected:            # left out, never silently
        warn_rejected(str(events_source), rejected, "messages")
    folded: list[int] = list(meta.get("parts", [])) if meta.get("stream") else []
    reason = ""
    if not meta.get("stream"):
        reason = "no state yet"
    elif not set(folded) <= set(history.parts):
        reason = "the kept messages were read anew (a file read before changed)"
    elif meta.get("version") != STATE_VERSION or meta.get("model") != fingerprint(model):
        reason = "the model changed"
    elif as_of_us < meta["ref"]:
        reason = "--as-of is before the state's watermark"
    elif meta.get("filters") != filters_key(filters):
        reason = "the filters changed"
    if reason:
        folded = []
    read = history.read(folded)
    if read.earlier and not reason:
        reason = f"{read.earlier} messages came again earlier than the copy kept"
    base = con.leads(leads, f"{prefix}_base_leads") if leads is not None else None
    resolved = history.resolve(read, as_of_us, base)
    if step:
        step("folding", 1, 2)
    ev = con.create(prefix + "_events", events(read.messages, read.columns, resolved.ids),
                    kind="VIEW")
    with_leads = (resolved.leads, resolved.leads_columns)
    ev, counts = con.kept(ev, with_leads, filters)     # every kept message's: as one run's
    caught = caught_leads(con, with_leads, filters)
    columns = con.columns(ev)
    interests = InterestFold(con, model, prefix) if compile_interests(model) else None
    new_files = len(set(history.meta["files"]) - before)
    if reason:
        state = fold_in(con, layout, None, fold.events(layout, ev, columns, _until(as_of_us)),
                        columns, as_of_us, prefix + "_s")
        if interests is not None:
            interests.fold(ev, columns, _until(as_of_us), as_of_us)
        report = RunReport("rebuild", reason, new_files)
    else:
        changed = sorted(lead for lead in {*caught, *meta.get("caught", {})}
                         if caught.get(lead) != meta.get("caught", {}).get(lead))
        state, report = _advance(con, layout, meta, folder, ev, columns, resolved.ids,
                                 as_of_us, prefix, interests, changed)
        report.files_read = new_files
    scores = scores_from_state(con, model, layout, state, columns, resolved.leads,
                               resolved.leads_columns)
    scores = with_profiles(scores, interests.profiles() if interests is not None else {})
    save_state(con, state, folder, {
        "version": STATE_VERSION, "model": fingerprint(model), "ref": as_of_us,
        "stream": True, "parts": history.parts, "filters": filters_key(filters),
        "caught": caught}, interests, {IDS_FILE: resolved.ids})
    report_filtered(str(events_source), counts)
    return scores, report


def accounts_with_state(models: list[Model], scores: pa.Table, leads: str | None,
                        as_of_us: int, state_dir: str | Path, con: Any) -> pa.Table:
    """The accounts of the stream kept in `state_dir` as of `as_of_us` (ACCOUNT_SCHEMA), from
    `scores`: the leads' scores its runs just gave at that time (`score_stream_with_state`).
    The account plan needs per lead only its score and account link, so no fold: the stream
    stage over the kept links (small) gives the links and the accounts' traits as of then."""
    con = runner_for(con)
    wanted = sorted((m for m in models if compile_account(m) is not None),
                    key=lambda m: m.name)
    if not wanted:
        return ACCOUNT_SCHEMA.empty_table()
    history = History(con, Path(state_dir) / MESSAGES, "__sstate_accounts")
    read = history.read(history.parts)
    base = con.leads(leads, "__sstate_accounts_base") if leads is not None else None
    resolved = history.resolve(read, as_of_us, base)
    tables = []
    for n, model in enumerate(wanted):
        mine = scores.filter(pa.compute.equal(scores.column("model"), model.name)).select(
            ["lead_id", "engagement", "disqualified"])
        name = con.register(f"__sstate_account_scores_{n}", mine)
        plan = compile_account_plan(model, name, resolved.leads, resolved.leads_columns,
                                    resolved.accounts, con.columns(resolved.accounts),
                                    as_of_us)
        account = compile_account(model)
        assert account is not None
        tables.append(account_table(account, con.arrow(plan)))
    return pa.concat_tables(tables)


def _advance(con: Runner, layout: Layout, meta: dict[str, Any], folder: Path, ev: str,
             columns: dict[str, str], ids: str, as_of_us: int, prefix: str,
             interests: InterestFold | None, changed: list[str]) -> tuple[State, RunReport]:
    """The saved fold moved to `as_of_us`: the leads whose identities moved, that have a
    late event in a closed bucket or whose verdict of a filter on leads `changed`, folded
    anew from every kept event, the others incrementally."""
    old_ref = int(meta["ref"])
    old = State(con.load(prefix + "_old_leads", folder / "leads.parquet"), None, old_ref,
                meta.get("boundary", old_ref))
    if (folder / "buckets.parquet").exists():
        old.buckets = con.load(prefix + "_old_buckets", folder / "buckets.parquet")
    if interests is not None:
        interests.load(folder, old_ref)
    old_ids = con.load(prefix + "_old_ids", folder / IDS_FILE)
    # not folded yet: the new files' events, and kept ones after the watermark
    unfolded = exp.and_(exp.or_(exp.EQ(this=col("fresh"), expression=exp.Literal.number(1)),
                                exp.GT(this=col("ts"), expression=exp.Literal.number(
                                    old_ref))), _until(as_of_us))
    news = con.create(prefix + "_news", fold.events(layout, ev, columns, unfolded))
    redo_parts: list[exp.Query] = [moved(old_ids, ids)]
    late = fold.late_leads(layout, _of(news), old)
    if late is not None:
        redo_parts.append(late)
    if changed:
        listed = con.register(prefix + "_refiltered", pa.table(
            {"lead_id": pa.array(changed, pa.string())}))
        redo_parts.append(exp.select(col("lead_id")).from_(table(listed)))
    redo_query = redo_parts[0]
    for part in redo_parts[1:]:
        redo_query = exp.union(redo_query, part, distinct=True)
    redo = con.create(prefix + "_redo", redo_query)
    count = int(con.scalar(exp.select(exp.Count(this=exp.Star())).from_(table(redo))))
    report = RunReport("incremental", "", 0)
    if not count:
        state = fold_in(con, layout, old, _of(news), columns, as_of_us, prefix + "_s")
        if interests is not None:
            interests.fold(ev, columns, unfolded, as_of_us)
        return state, report
    redo_ids = exp.select(col("lead_id")).from_(table(redo))
    keep = exp.not_(col("lead_id").isin(query=redo_ids.copy()))
    again = col("lead_id").isin(query=redo_ids.copy())
    kept = State(con.create(prefix + "_keep_leads", _of(old.leads).where(keep.copy())), None,
                 old.ref, old.boundary)
    if old.buckets is not None:
        kept.buckets = con.create(prefix + "_keep_buckets", _of(old.buckets).where(keep.copy()))
    state = fold_in(con, layout, kept, _of(news).where(keep.copy()), columns, as_of_us,
                    prefix + "_s")
    refolded = fold_in(con, layout, None, fold.events(layout, ev, columns, exp.and_(
        _until(as_of_us), again.copy())), columns, as_of_us, prefix + "_r")
    con.append(state.leads, refolded.leads)
    if refolded.buckets is not None and state.buckets is not None:
        con.append(state.buckets, refolded.buckets)
    if interests is not None:
        interests.forget(redo_ids)
        interests.fold(ev, columns, exp.and_(unfolded, keep.copy()), as_of_us)
        interests.fold(ev, columns, exp.and_(_until(as_of_us), again.copy()), as_of_us)
    report.late_leads = count
    report.reason = f"{count} leads folded anew (identities moved, late events or filters)"
    return state, report


__all__ = ["accounts_with_state", "score_stream_with_state"]
