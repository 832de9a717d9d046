"""Outcomes: which leads converted, and when — from a file, a data frame, or events.

A canonical outcomes table has `lead_id VARCHAR, converted BOOLEAN, converted_at BIGINT` (µs UTC,
null when unknown). From a file or frame: `lead_id` plus `converted` (0/1, true/false, yes/no)
and/or `converted_at` (a timestamp). From events: `event:<name>` makes the first such event of
each lead its conversion (`event:Order Completed`, a CRM "closed won" sent as a track event).

Labelling as of a cut-off (`label_sql`): a lead converted at or before the cut-off is already a
customer and is left out; one converted after it (within the window, when one is given) is a 1;
a `converted` flag without a date means "converted in the window after the cut-off"; every other
lead of the population is a 0.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import duckdb

from leadscore.errors import InputError
from leadscore.io.readers import as_arrow, source_files, timestamp_sql
from leadscore.io.sqltext import quote
from leadscore.timeutil import US_PER_DAY

EVENT_PREFIX = "event:"
_TRUE = "('1', 'true', 't', 'yes', 'y', 'converted', 'won')"
_sequence = itertools.count()


@dataclass(frozen=True)
class Outcomes:
    """A canonical outcomes table registered in a connection, and where it came from."""

    table: str
    source: str
    rows: int
    converted: int
    event: str | None = None     # the conversion event when read from events

    def describe(self) -> str:
        return f"{self.converted:,} conversions among {self.rows:,} outcome rows ({self.source})"


def read_outcomes(source: Any, con: duckdb.DuckDBPyConnection, *, events: str | None = None,
                  name: str | None = None) -> Outcomes:
    """Register `source` in `con` as a canonical outcomes table (see module doc).

    `events` is the name of a canonical events table in `con`; it is needed for
    `event:<name>` sources.
    """
    table = name or f"__outcomes_{next(_sequence)}"
    if isinstance(source, str) and source.startswith(EVENT_PREFIX):
        event = source[len(EVENT_PREFIX):].strip()
        if not event:
            raise InputError(f"outcomes {source!r}: expected event:<event name>, such as "
                             "'event:Order Completed'")
        if events is None:
            raise InputError(f"outcomes {source!r}: outcomes from events need the events")
        con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(table)} AS SELECT lead_id, "
                    f"true AS converted, min(ts) AS converted_at FROM {quote(events)} "
                    f"WHERE type <> 'page' AND event = ? GROUP BY lead_id", [event])
        return _report(con, table, source, event)
    raw = f"{table}__raw"
    if isinstance(source, str) or hasattr(source, "__fspath__"):
        label, files = source_files(str(source))
        listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
        suffix = files[0].rsplit(".", 1)[-1].lower()
        readers = {"parquet": "read_parquet", "pq": "read_parquet", "csv": "read_csv",
                   "tsv": "read_csv", "txt": "read_csv", "jsonl": "read_json",
                   "ndjson": "read_json", "json": "read_json"}
        if suffix not in readers:
            raise InputError(f"{label}: unknown file type .{suffix}; expected .csv, .parquet "
                             "or .jsonl")
        try:
            con.sql(f"CREATE OR REPLACE TEMP VIEW {quote(raw)} AS "
                    f"SELECT * FROM {readers[suffix]}({listed})")
        except duckdb.Error as exc:
            raise InputError(f"{label}: cannot read: {exc}") from None
    else:
        label = f"<{type(source).__name__}>"
        con.register(raw, as_arrow(source))
    rel = con.sql(f"SELECT * FROM {quote(raw)} LIMIT 0")
    types = {c: t.id for c, t in zip(rel.columns, rel.types, strict=True)}
    if "lead_id" not in types:
        raise InputError(f"{label}: no column 'lead_id'; columns found: {', '.join(types)}")
    if "converted" not in types and "converted_at" not in types:
        raise InputError(f"{label}: no column 'converted' or 'converted_at'; expected a 0/1 "
                         "column `converted` and/or a timestamp column `converted_at`")
    if "converted" in types:
        flag = (f"CAST({quote('converted')} AS BOOLEAN)" if types["converted"] == "boolean"
                else f"lower(trim(CAST({quote('converted')} AS VARCHAR))) IN {_TRUE}")
    else:
        flag = "NULL"
    at = (timestamp_sql(quote("converted_at"), types["converted_at"], label)
          if "converted_at" in types else "CAST(NULL AS BIGINT)")
    converted = f"coalesce({flag}, ({at}) IS NOT NULL)" if flag != "NULL" else \
        f"(({at}) IS NOT NULL)"
    con.sql(f"CREATE OR REPLACE TEMP TABLE {quote(table)} AS SELECT CAST(lead_id AS VARCHAR) "
            f"AS lead_id, bool_or({converted}) AS converted, min({at}) AS converted_at "
            f"FROM {quote(raw)} WHERE lead_id IS NOT NULL GROUP BY 1")
    return _report(con, table, label, None)


def _report(con: duckdb.DuckDBPyConnection, table: str, source: str,
            event: str | None) -> Outcomes:
    [(rows, converted)] = con.sql(f"SELECT count(*), count(*) FILTER (WHERE converted) "
                                  f"FROM {quote(table)}").fetchall()
    return Outcomes(table, source, int(rows), int(converted), event)


def label_sql(population: str, outcomes: str, as_of_us: int,
              window_days: float | None) -> str:
    """SQL of `lead_id, converted (0/1), converted_at` for the leads of `population` that had
    not converted by the cut-off (see module doc)."""
    end = (f"o.converted_at <= {as_of_us + int(window_days * US_PER_DAY)}"
           if window_days is not None else "true")
    return (f"SELECT p.lead_id, CAST(CASE WHEN o.converted_at IS NOT NULL THEN {end} "
            f"ELSE coalesce(o.converted, false) END AS INTEGER) AS converted, o.converted_at "
            f"FROM {quote(population)} AS p LEFT JOIN {quote(outcomes)} AS o "
            f"ON o.lead_id = p.lead_id "
            f"WHERE o.converted_at IS NULL OR o.converted_at > {as_of_us}")
