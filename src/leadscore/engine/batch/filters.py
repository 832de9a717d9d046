"""Filters on batch inputs (#19): the canonical events a filter catches (bots, internal
traffic, link scanners) are left out before any plan reads them, with the same verdict the
service stores (`leadscore.filters.which_filter`), and counted like bad rows.

Exact and cheap: the verdict is computed in Python once per distinct (user agent, ip,
seconds since sent of a click), and once per lead where a filter on leads is set, then the
caught ones are joined in SQL. Columns read: `context.userAgent` (a flat table's
`user_agent`, read as `properties.user_agent`), `context.ip` (or `ip`),
`properties.seconds_since_sent` on `Email Link Clicked` events, and the leads'
`traits.email`. Without any of them (and no lead filter) the events
are read as they are, at no cost."""

from __future__ import annotations

import itertools
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import duckdb
import pyarrow as pa

from leadscore.errors import FilteredEventsWarning
from leadscore.events import Event, Lead
from leadscore.filters import CLICKED, FILTERS, SINCE_SENT, Filters, event_filter, lead_filter
from leadscore.io.sqltext import literal, quote

_sequence = itertools.count()

# A flat events table's `user_agent` / `ip` columns are read as properties (`io.readers`).
AGENT_COLUMNS = ("context.userAgent", "properties.user_agent")
IP_COLUMNS = ("context.ip", "properties.ip")
SINCE_COLUMN = f"properties.{SINCE_SENT}"
EMAIL_COLUMNS = ("traits.email", "email")


def _first(columns: dict[str, str] | None, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if columns and n in columns), None)


def filter_events(con: duckdb.DuckDBPyConnection, events_table: str,
                  columns: dict[str, str], leads_table: str | None,
                  leads_columns: dict[str, str] | None, filters: Filters, *,
                  source: str = "events") -> tuple[str, dict[str, int]]:
    """The name of a view of `events_table` without the events a filter catches (the table
    itself where none can be), and how many each filter caught (a `FilteredEventsWarning`
    says so where any was)."""
    keys = verdict_keys(columns)
    event_table = lead_table = None
    if keys:
        rows = con.sql(distinct_sql(events_table, keys, quote)).fetchall()
        found = event_verdicts(rows, keys, filters)
        event_table = _register(con, "__event_verdicts", found) if found["filter"] else None
    lead_rows = None
    if filters.lead_ids or filters.internal_domains:
        email = _first(leads_columns, EMAIL_COLUMNS)
        lead_rows = [] if leads_table is None else con.sql(
            f"SELECT lead_id, {quote(email) if email else 'NULL'} FROM "
            f"{quote(leads_table)}").fetchall()
        caught = lead_verdicts(lead_rows, filters)
        lead_table = _register(con, "__lead_verdicts", caught) if caught["filter"] else None
    if event_table is None and lead_table is None:
        return events_table, {}
    joined, verdict = judged_sql(events_table, keys, event_table, lead_table, quote)
    counts = {k: int(n) for k, n in con.sql(
        f"SELECT {verdict}, count(*) {joined} WHERE {verdict} IS NOT NULL GROUP BY 1"
    ).fetchall()}
    kept = f"__kept_{next(_sequence)}"
    con.sql(f"CREATE TEMP VIEW {quote(kept)} AS SELECT e.* {joined} WHERE {verdict} IS NULL")
    if counts:
        warn_filtered(source, counts)
    return kept, ordered(counts)


# ---- shared with Spark (`engine.batch.spark_filters`): the SQL in either quoting, and the
# verdicts computed in Python over the distinct values.

def verdict_keys(columns: dict[str, str]) -> list[str]:
    """The events' columns a verdict depends on, then `clicked`; [] where there is none."""
    found = [c for c in (_first(columns, AGENT_COLUMNS), _first(columns, IP_COLUMNS),
                         SINCE_COLUMN if SINCE_COLUMN in columns else None) if c]
    return [*found, "clicked"] if found else []


def _key_sql(key: str, prefix: str, q: Callable[[str], str]) -> str:
    if key == "clicked":
        return f"({prefix}event = {literal(CLICKED)})"
    if key == SINCE_COLUMN:
        return f"(CASE WHEN {prefix}event = {literal(CLICKED)} THEN {prefix}{q(key)} END)"
    return f"{prefix}{q(key)}"


def distinct_sql(events_table: str, keys: list[str], q: Callable[[str], str]) -> str:
    return f"SELECT DISTINCT {', '.join(_key_sql(k, '', q) for k in keys)} FROM " \
        f"{q(events_table)}"


def judged_sql(events_table: str, keys: list[str], event_table: str | None,
               lead_table: str | None, q: Callable[[str], str]) -> tuple[str, str]:
    """`FROM … LEFT JOIN …` of the events with the verdict tables, and the verdict term."""
    joined, terms = f"FROM {q(events_table)} e", []
    if event_table is not None:
        on = " AND ".join(f"{_key_sql(k, 'e.', q)} IS NOT DISTINCT FROM v.{q(k)}" for k in keys)
        joined += f" LEFT JOIN {q(event_table)} v ON {on}"
        terms.append("v.filter")
    if lead_table is not None:
        joined += f" LEFT JOIN {q(lead_table)} l ON l.lead_id = e.lead_id"
        terms.append("l.filter")
    return joined, f"COALESCE({', '.join(terms)})" if len(terms) > 1 else terms[0]


def event_verdicts(rows: Sequence[Sequence[Any]], keys: list[str], filters: Filters
                   ) -> dict[str, list[Any]]:
    """The distinct key values a filter catches, as columns, with the filter's name."""
    agent = next((k for k in keys if k in AGENT_COLUMNS), None)
    ip = next((k for k in keys if k in IP_COLUMNS), None)
    caught: dict[str, list[Any]] = {key: [] for key in [*keys, "filter"]}
    for row in rows:
        values = dict(zip(keys, row, strict=True))
        context = {name: values[column] for name, column in (("userAgent", agent),
                                                             ("ip", ip))
                   if column and values[column] is not None}
        seconds = values.get(SINCE_COLUMN)
        event = Event("", 0, "track", CLICKED if values["clicked"] else None,
                      properties={SINCE_SENT: seconds} if seconds is not None else {},
                      context=context)
        verdict = event_filter(event, filters)
        if verdict is not None:
            for key in keys:
                caught[key].append(values[key])
            caught["filter"].append(verdict)
    return caught


def lead_verdicts(rows: Sequence[Sequence[Any]], filters: Filters) -> dict[str, list[Any]]:
    """The leads (rows of lead_id, e-mail) a filter on leads catches, and the listed lead
    ids the rows do not name: lead_id and filter as columns."""
    listed = {str(r[0]) for r in rows}
    every = [*rows, *((lead_id, None) for lead_id in filters.lead_ids if lead_id not in listed)]
    caught: dict[str, list[Any]] = {"lead_id": [], "filter": []}
    for lead_id, address in every:
        verdict = lead_filter(Lead(str(lead_id), {"email": address} if address else {}),
                              filters)
        if verdict is not None:
            caught["lead_id"].append(str(lead_id))
            caught["filter"].append(verdict)
    return caught


def _register(con: duckdb.DuckDBPyConnection, prefix: str, columns: dict[str, list[Any]]
              ) -> str:
    name = f"{prefix}_{next(_sequence)}"
    con.register(f"{name}_arrow", pa.table(columns))
    con.sql(f"CREATE TEMP TABLE {quote(name)} AS SELECT * FROM {quote(name + '_arrow')}")
    con.unregister(f"{name}_arrow")
    return name


def ordered(counts: dict[str, int]) -> dict[str, int]:
    return {name: counts[name] for name in FILTERS if name in counts}


def warn_filtered(source: str, counts: dict[str, int], *, stacklevel: int = 4) -> None:
    """A `FilteredEventsWarning`: how many events of `source` each filter kept out."""
    total = sum(counts.values())
    each = ", ".join(f"{name} {n:,}" for name, n in ordered(Counter(counts)).items())
    warnings.warn(FilteredEventsWarning(
        f"{source}: {total:,} event{'s' * (total != 1)} filtered, not scored ({each})"),
        stacklevel=stacklevel)
