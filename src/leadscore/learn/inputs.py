"""The inputs of evaluate and learn, registered once in one DuckDB connection."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from leadscore.engine.batch import connect
from leadscore.engine.batch.inputs import canonical_inputs
from leadscore.errors import InputError
from leadscore.io.readers import is_message_stream, read_events, read_leads, read_messages
from leadscore.io.sqltext import quote
from leadscore.learn.outcomes import Outcomes, label_sql, read_outcomes
from leadscore.timeutil import parse_timestamp


class Step(Protocol):
    """Progress: the step now running and, where known, the share of the whole run done
    before it (0–1), which the CLI shows as a bar."""

    def __call__(self, text: str, done: float | None = None, /) -> None: ...


When = datetime | date | str | int | None
EVENTS, LEADS, OUTCOMES, MESSAGES = "ls_events", "ls_leads", "ls_outcomes", "ls_messages"
# "as of the end of the data": a message stream's identities as finally known (outcomes,
# conversions after a cut-off, the data's end)
END_OF_TIME = 2**62


def quiet(text: str, done: float | None = None, /) -> None:
    """A progress callback that shows nothing."""


@dataclass
class Inputs:
    """Events, leads and outcomes as canonical tables in `con`. From a message stream,
    `events` / `leads` are as of the data's end (outcomes read them) and `at(T)` gives the
    tables as of `T`: what was known then (scores and features as of a cut-off)."""

    con: duckdb.DuckDBPyConnection
    events: str
    leads: str | None
    outcomes: Outcomes
    dated: bool                 # do outcomes carry dates?
    data_end: int               # the last event or conversion, µs UTC
    messages: str | None = None     # the stream's messages table, if the input is one
    base_leads: str | None = None   # a leads table beside the stream
    ids: str | None = None          # the stream's identities as finally known
    known: dict[int, tuple[str, str | None, str | None]] = field(default_factory=dict)

    def at(self, as_of_us: int) -> tuple[str, str | None]:
        """(events, leads) tables as known at `as_of_us`: the stream stage as of then for a
        message stream (each instant staged once), else the tables themselves."""
        if self.messages is None:
            return self.events, self.leads
        if as_of_us not in self.known:
            found = canonical_inputs(self.messages, self.base_leads, self.con, as_of_us)
            self.known[as_of_us] = (found.events, found.leads, found.ids)
        return self.known[as_of_us][:2]

    def outcomes_at(self, as_of_us: int) -> str:
        """The outcomes table keyed by the leads as known at `as_of_us`: from a stream, a
        lead of then (say an anonymous visitor) converts when the lead it later became
        converts; else the outcomes themselves."""
        if self.messages is None or self.ids is None:
            return self.outcomes.table
        self.at(as_of_us)
        ids_then = self.known[as_of_us][2]
        name = f"{OUTCOMES}_at_{as_of_us}".replace("-", "m")
        links = (f"SELECT DISTINCT t.lead_id AS lead_then, e.lead_id AS lead_end "
                 f"FROM {quote(ids_then or '')} AS t JOIN {quote(self.ids)} AS e "
                 f"ON e.ident = t.ident")
        self.con.sql(
            f"CREATE OR REPLACE TEMP TABLE {quote(name)} AS "
            f"WITH links AS ({links}) "
            f"SELECT l.lead_then AS lead_id, o.* EXCLUDE (lead_id) FROM links AS l "
            f"JOIN {quote(self.outcomes.table)} AS o ON o.lead_id = l.lead_end "
            f"UNION ALL BY NAME SELECT * FROM {quote(self.outcomes.table)} "
            f"WHERE lead_id NOT IN (SELECT lead_then FROM links)")
        return name

    def population(self, as_of_us: int, name: str) -> str:
        """A table of the leads the engine scores at `as_of`: every lead of the leads table
        and every lead with an event at or before it."""
        events, leads = self.at(as_of_us)
        parts = [f"SELECT DISTINCT lead_id FROM {quote(events)} WHERE ts <= {as_of_us}"]
        if leads is not None:
            parts.append(f"SELECT lead_id FROM {quote(leads)}")
        self.con.sql(f"CREATE OR REPLACE TEMP TABLE {quote(name)} AS "
                     + " UNION ".join(parts))
        return name

    def labels(self, population: str, as_of_us: int, window_days: float | None,
               name: str) -> str:
        """`lead_id, converted, converted_at` of the population's not-yet-converted leads."""
        self.con.sql(f"CREATE OR REPLACE TEMP TABLE {quote(name)} AS "
                     + label_sql(population, self.outcomes_at(as_of_us), as_of_us,
                                 window_days))
        return name


def open_inputs(events: Any, leads: Any, outcomes: Any, *,
                con: duckdb.DuckDBPyConnection | None = None, step: Step = quiet,
                share: float = 0.0) -> Inputs:
    """Read the three inputs; `events` may be None for leads with traits only. `share`: the
    part of the caller's run that reading is (for the progress bar)."""
    con = con or connect()
    step("reading events", 0.0)
    # events as a message stream (leads beside it: a stream too, or the base table); a leads
    # stream beside an events table is read as leads (identify traits), as before
    if events is not None and is_message_stream(events, con):
        streams = [s for s in (events, leads) if s is not None and is_message_stream(s, con)]
        return _open_stream(events, leads, streams, outcomes, con, step, share)
    if events is None:
        empty = pa.table({"lead_id": pa.array([], pa.string()),
                          "timestamp": pa.array([], pa.timestamp("us", tz="UTC")),
                          "type": pa.array([], pa.string()), "event": pa.array([], pa.string()),
                          "path": pa.array([], pa.string())})
        read_events(empty, con, name=EVENTS)
    else:
        read_events(events, con, name=EVENTS)
    events_name = EVENTS
    if not _is_parquet(events):   # every later step reads the events again: parse them once
        con.sql(f"CREATE OR REPLACE TEMP TABLE {EVENTS}_t AS SELECT * FROM {EVENTS}")
        events_name = f"{EVENTS}_t"
    leads_name = None
    if leads is not None:
        step("reading leads", share * 0.6)
        read_leads(leads, con, name=LEADS)
        con.sql(f"CREATE OR REPLACE TEMP TABLE {LEADS}_t AS SELECT * FROM {LEADS}")
        leads_name = f"{LEADS}_t"
    step("reading outcomes", share * 0.8)
    read = read_outcomes(outcomes, con, events=events_name, name=OUTCOMES)
    [(dated, last_conversion)] = con.sql(
        f"SELECT count(converted_at) > 0, max(converted_at) FROM {OUTCOMES}").fetchall()
    [(last_event,)] = con.sql(f"SELECT max(ts) FROM {events_name}").fetchall()
    ends = [v for v in (last_event, last_conversion) if v is not None]
    if not ends and leads_name is None:
        raise InputError("no events and no leads: nothing to evaluate or learn from")
    return Inputs(con, events_name, leads_name, read, bool(dated),
                  int(max(ends)) if ends else 0)


def _open_stream(events: Any, leads: Any, streams: list[Any], outcomes: Any,
                 con: duckdb.DuckDBPyConnection, step: Step, share: float) -> Inputs:
    """`open_inputs` for a message stream (events and/or leads): read once, staged as of
    the end of the data for the outcomes, and as of each cut-off on demand (`Inputs.at`)."""
    read_messages(streams, con, name=MESSAGES)
    base = None
    if leads is not None and not any(leads is s for s in streams):
        step("reading leads", share * 0.6)
        read_leads(leads, con, name=LEADS)
        con.sql(f"CREATE OR REPLACE TEMP TABLE {LEADS}_t AS SELECT * FROM {LEADS}")
        base = f"{LEADS}_t"
    step("resolving identities", share * 0.7)
    found = canonical_inputs(MESSAGES, base, con, END_OF_TIME)
    step("reading outcomes", share * 0.8)
    read = read_outcomes(outcomes, con, events=found.events, name=OUTCOMES)
    [(dated, last_conversion)] = con.sql(
        f"SELECT count(converted_at) > 0, max(converted_at) FROM {OUTCOMES}").fetchall()
    [(last_event,)] = con.sql(f"SELECT max(ts) FROM {quote(found.events)}").fetchall()
    ends = [v for v in (last_event, last_conversion) if v is not None]
    if not ends and found.leads is None:
        raise InputError("no events and no leads: nothing to evaluate or learn from")
    return Inputs(con, found.events, found.leads, read, bool(dated),
                  int(max(ends)) if ends else 0, messages=MESSAGES, base_leads=base,
                  ids=found.ids)


def _is_parquet(source: Any) -> bool:
    if not isinstance(source, str | Path):
        return False
    text = str(source)
    return text.endswith((".parquet", ".pq")) or Path(text).is_dir()


def as_of_us(value: When, default: int) -> int:
    if value is None:
        return default
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise InputError(f"as_of: {exc}; expected ISO 8601 such as 2026-05-01T00:00:00Z") \
            from None
