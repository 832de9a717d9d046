"""The batch runners' inputs on DuckDB: events, leads and accounts as canonical tables
(`leadscore.io` reads them; rows it rejects are skipped with a warning, never silently),
their column types, and `as_of` in µs. A Segment message stream (a JSON file, or a table of
the `messages` relation) goes through the stream stage (`engine.batch.stream`) as of
`as_of`: `canonical_inputs` is the one path every batch entry point takes."""

from __future__ import annotations

import itertools
import os
import warnings
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

import duckdb
import pyarrow as pa

from leadscore.engine.batch.filters import filter_events
from leadscore.errors import EventError, InputError, RejectedRowsWarning
from leadscore.events import Event, Lead
from leadscore.filters import Filters
from leadscore.io.readers import (
    events_of,
    is_message_stream,
    lead_of,
    read_events,
    read_leads,
    read_messages,
)
from leadscore.io.sqltext import literal, quote
from leadscore.timeutil import now_us, parse_timestamp

_sequence = itertools.count()


def as_of_us(as_of: datetime | date | str | int | float | None) -> int:
    """`as_of` as µs since the epoch (UTC); None: now."""
    if as_of is None:
        return now_us()
    try:
        return parse_timestamp(as_of)
    except ValueError as exc:
        raise InputError(f"as_of: {exc}") from None


def table_columns(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, str]:
    """The columns of table `name` in `con` and their SQL types."""
    rel = con.sql(f"SELECT * FROM {quote(name)} LIMIT 0")
    return {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    try:
        con.sql(f"SELECT * FROM {quote(name)} LIMIT 0")
    except duckdb.Error:
        return False
    return True


def input_table(source: Any, con: duckdb.DuckDBPyConnection, kind: str) -> str:
    """The name of a canonical table in `con` holding `source` (kind "events" or "leads"):
    anything `read_events` / `read_leads` accept, or the name of such a table in `con`."""
    if isinstance(source, str) and not os.path.exists(source) and _has_table(con, source) \
            and not any(mark in source for mark in "*?["):
        return source
    name = f"__{kind}_{next(_sequence)}"
    if kind == "events":
        report = read_events(source, con, name=name)
    else:
        report = read_leads(source, con, name=name)
    if report.rejected:    # scored without them, but never silently
        first = report.rejected_rows.slice(0, 1).to_pylist()
        # worded as the error `strict=True` raises for it: "row 2, field 'lead_id': …"
        example = "" if not first else " (the first: " + str(EventError(
            first[0]["reason"], row=first[0]["row"], field=first[0]["field"])) + ")"
        warn_rejected(report.source, report.rejected, kind, example, stacklevel=4)
    return name


def warn_rejected(source: str, count: int, kind: str, example: str = "", *,
                  stacklevel: int = 3) -> None:
    """A `RejectedRowsWarning`: `count` rows of `source` (kind "events" or "leads") skipped;
    `stacklevel` points it at the user's call."""
    warnings.warn(RejectedRowsWarning(
        f"{source}: {count:,} bad {kind.removesuffix('s')} row{'s' * (count != 1)} "
        f"skipped{example}"), stacklevel=stacklevel)


def read_accounts(source: Any, con: Any, name: str) -> dict[str, str]:
    """Stage an accounts table (`account_id` + one column per trait; a column may be named
    `account.<x>` or `traits.<x>` too) as `name` with columns `account_id, account.<x>`;
    return its columns and SQL types. Accepts a path (.csv, .parquet, .jsonl), an Arrow table,
    a pandas/polars frame, or the name of a table in `con`."""
    if isinstance(source, str | os.PathLike) and os.path.exists(source):
        path = str(source)
        reader = "read_parquet" if path.endswith(".parquet") else (
            "read_json_auto" if path.endswith((".jsonl", ".ndjson", ".json")) else
            "read_csv_auto")
        raw = con.sql(f"SELECT * FROM {reader}({literal(path)})")
    elif isinstance(source, str):
        raw = con.sql(f"SELECT * FROM {quote(source)}")
    else:
        table = source if isinstance(source, pa.Table) else pa.Table.from_pandas(source) \
            if hasattr(source, "to_dict") else pa.table(source)
        raw = con.from_arrow(table)
    if "account_id" not in raw.columns:
        raise InputError(f"accounts: no account_id column (columns: {', '.join(raw.columns)})")
    view = f"__accounts_src_{name}"
    con.register(view, raw.to_arrow_table())
    selects = [f"CAST({quote('account_id')} AS VARCHAR) AS {quote('account_id')}"]
    for column in raw.columns:
        if column == "account_id":
            continue
        trait = column.removeprefix("account.").removeprefix("traits.")
        selects.append(f"{quote(column)} AS {quote('account.' + trait)}")
    con.sql(f"CREATE OR REPLACE TEMP TABLE {quote(name)} AS SELECT {', '.join(selects)} "
            f"FROM {quote(view)} WHERE {quote('account_id')} IS NOT NULL")
    con.unregister(view)
    return table_columns(con, name)


@dataclass(frozen=True)
class Canonical:
    """The canonical tables in a connection for one `as_of`, and their columns."""

    events: str
    leads: str | None
    accounts: str | None
    events_columns: dict[str, str] = field(default_factory=dict)
    leads_columns: dict[str, str] | None = None
    accounts_columns: dict[str, str] = field(default_factory=dict)
    stream: bool = False        # did a message stream make them?
    ids: str | None = None      # a stream's identities: ident (`u:…` / `a:…`) → lead_id
    filtered: dict[str, int] = field(default_factory=dict)   # events left out, per filter


def canonical_inputs(events: Any, leads: Any, con: duckdb.DuckDBPyConnection, as_of: int,
                     accounts: Any = None, filters: Filters | None = None) -> Canonical:
    """Events, leads (optional) and accounts (optional) as canonical tables in `con` at
    `as_of` (µs), the events `filters` catch left out (default: `Filters()`, the maintained
    bot and scanner lists; `engine.batch.filters`). Where events or leads are a message
    stream (`io.is_message_stream`; both streams: one history), the stream stage makes the
    canonical tables: the leads of a table given beside it are the base its identify calls
    update per key, an accounts table likewise; the stream's accounts are those it names."""
    found = _canonical(events, leads, con, as_of, accounts)
    kept, counts = filter_events(con, found.events, found.events_columns, found.leads,
                                 found.leads_columns, Filters() if filters is None else filters,
                                 source=_source_name(events))
    return replace(found, events=kept, filtered=counts) if counts else found


def _source_name(source: Any) -> str:
    return str(source) if isinstance(source, str | os.PathLike) else "events"


def _canonical(events: Any, leads: Any, con: duckdb.DuckDBPyConnection, as_of: int,
               accounts: Any) -> Canonical:
    accounts_name, accounts_columns = None, {}
    if accounts is not None:
        accounts_name = f"__accounts_{next(_sequence)}"
        accounts_columns = read_accounts(accounts, con, accounts_name)
    streams = [s for s in (events, leads) if s is not None and is_message_stream(s, con)]
    if not streams:
        ev = input_table(events, con, "events")
        ld = input_table(leads, con, "leads") if leads is not None else None
        return Canonical(ev, ld, accounts_name, table_columns(con, ev),
                         table_columns(con, ld) if ld else None, accounts_columns)
    from leadscore.engine.batch.stream import run_stream

    messages = message_input(streams, con)
    base = input_table(leads, con, "leads") if leads is not None and \
        not any(leads is s for s in streams) else None
    made = run_stream(con, messages, as_of, base_leads=base, base_accounts=accounts_name)
    if events is not None and not any(events is s for s in streams):
        ev = input_table(events, con, "events")
        ev_columns = table_columns(con, ev)
    else:
        ev, ev_columns = made.events, made.events_columns
    return Canonical(ev, made.leads, made.accounts, ev_columns, made.leads_columns,
                     made.accounts_columns, stream=True, ids=made.ids)


def message_input(sources: list[Any], con: duckdb.DuckDBPyConnection) -> str:
    """The name of a `messages` table in `con` holding `sources` (one history)."""
    if len(sources) == 1 and isinstance(sources[0], str) and _has_table(con, sources[0]) \
            and not os.path.exists(sources[0]) and not any(m in sources[0] for m in "*?["):
        # (a glob of JSON files is files: DuckDB would read it as one raw JSON table)
        return sources[0]
    name = f"__messages_{next(_sequence)}"
    report = read_messages(list(sources), con, name=name)
    if report.rejected:
        first = report.rejected_rows.slice(0, 1).to_pylist()
        example = "" if not first else " (the first: " + str(EventError(
            first[0]["reason"], row=first[0]["row"], field=first[0]["field"])) + ")"
        warn_rejected(report.source, report.rejected, "messages", example, stacklevel=5)
    return name


def lead_history(events: Any, leads: Any, lead_id: str, as_of: int
                 ) -> tuple[list[Event], Lead | None]:
    """One lead's events (oldest first) and profile as of `as_of` from batch inputs (files,
    tables, message streams: whatever `canonical_inputs` reads), for `explain`."""
    con = duckdb.connect()
    try:
        found = canonical_inputs(events, leads, con, as_of)
        history = events_of(con, lead_id, found.events)
        profile = lead_of(con, lead_id, found.leads) if found.leads is not None else None
    finally:
        con.close()
    return history, profile
