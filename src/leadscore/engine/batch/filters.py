"""Filters on batch inputs (#19): the canonical events a filter catches (bots, internal
traffic, link scanners) are left out before any plan reads them, with the same verdict the
service stores (`leadscore.filters.which_filter`), and counted like bad rows.

Exact and cheap: the verdict's parts (`leadscore.filters`: an address's, an agent's, a
lead's) are computed in Python once per distinct address, agent and lead, only for the
filters set; the caught ones are joined to the events in SQL, where the time since a click's
e-mail is compared too. Columns read: `context.userAgent` (a flat table's
`user_agent`, read as `properties.user_agent`), `context.ip` (or `ip`),
`properties.seconds_since_sent` on `Email Link Clicked` events, and the leads'
`traits.email`. Without any of them (and no lead filter) the events
are read as they are, at no cost."""

from __future__ import annotations

import itertools
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from leadscore.errors import FilteredEventsWarning
from leadscore.events import Lead
from leadscore.filters import (
    CLICKED,
    FILTERS,
    SINCE_SENT,
    Filters,
    agent_filter,
    ip_filter,
    lead_filter,
)
from leadscore.filters import agents as agent_lists
from leadscore.io.sqltext import literal, quote

_sequence = itertools.count()

# A flat events table's `user_agent` / `ip` columns are read as properties (`io.readers`).
AGENT_COLUMNS = ("context.userAgent", "properties.user_agent")
IP_COLUMNS = ("context.ip", "properties.ip")
SINCE_COLUMN = f"properties.{SINCE_SENT}"
EMAIL_COLUMNS = ("traits.email", "email")


def _first(columns: dict[str, str] | None, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if columns and n in columns), None)


# Kept views are what `filter_events` made: scoring one again (`score_many` on the canonical
# tables of `canonical_inputs`) has nothing more to leave out.
KEPT = "__kept_"
NUMERIC = ("TINYINT", "SMALLINT", "INT", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
           "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL", "NUMERIC", "LONG",
           "SHORT", "BYTE")


@dataclass(frozen=True)
class Read:
    """The events' columns the filters set read (None: not read)."""

    agent: str | None
    ip: str | None
    since: str | None

    @classmethod
    def of(cls, columns: dict[str, str], filters: Filters) -> Read:
        since = SINCE_COLUMN if filters.link_scanners and SINCE_COLUMN in columns and \
            columns[SINCE_COLUMN].upper().startswith(NUMERIC) else None   # a number, as ever
        wants_agent = filters.bots or bool(filters.user_agents) or filters.link_scanners
        return cls(_first(columns, AGENT_COLUMNS) if wants_agent else None,
                   _first(columns, IP_COLUMNS) if filters.ips else None, since)


def filter_events(con: duckdb.DuckDBPyConnection, events_table: str,
                  columns: dict[str, str], leads_table: str | None,
                  leads_columns: dict[str, str] | None, filters: Filters, *,
                  source: str = "events", warn: bool = True) -> tuple[str, dict[str, int]]:
    """The name of a view of `events_table` without the events a filter catches (the table
    itself where none can be), and how many each filter caught (with `warn`, a
    `FilteredEventsWarning` says so where any was)."""
    if events_table.startswith(KEPT):
        return events_table, {}
    read = Read.of(columns, filters)
    tables: dict[str, str | None] = {"agent": None, "ip": None, "lead": None}
    for kind, column, verdicts in (("agent", read.agent, agent_verdicts),
                                   ("ip", read.ip, ip_verdicts)):
        if column is not None:
            values = [r[0] for r in con.sql(f"SELECT DISTINCT {quote(column)} FROM "
                                            f"{quote(events_table)} WHERE {quote(column)} "
                                            "IS NOT NULL").fetchall()]
            caught = verdicts(values, filters)
            tables[kind] = _register(con, f"__{kind}_verdicts", caught) \
                if caught[kind] else None
    if filters.lead_ids or filters.internal_domains:
        email = _first(leads_columns, EMAIL_COLUMNS)
        rows = [] if leads_table is None else con.sql(
            f"SELECT lead_id, {quote(email) if email else 'NULL'} FROM "
            f"{quote(leads_table)}").fetchall()
        caught = lead_verdicts(rows, filters)
        tables["lead"] = _register(con, "__lead_verdicts", caught) if caught["filter"] \
            else None
    found = judged_sql(events_table, read, tables, filters, quote)
    if found is None:
        return events_table, {}
    joined, verdict = found
    counts = {k: int(n) for k, n in con.sql(
        f"SELECT {verdict}, count(*) {joined} WHERE {verdict} IS NOT NULL GROUP BY 1"
    ).fetchall()}
    kept = f"{KEPT}{next(_sequence)}"
    con.sql(f"CREATE TEMP VIEW {quote(kept)} AS SELECT e.* {joined} WHERE {verdict} IS NULL")
    if counts and warn:
        warn_filtered(source, counts)
    return kept, ordered(counts)


# ---- shared with Spark (`engine.batch.spark.filter_view`): the verdict's parts per distinct
# value, and the SQL that joins them, in either quoting.

def agent_verdicts(values: Iterable[str], filters: Filters) -> dict[str, list[Any]]:
    """The agents a filter on agents catches (`filter`), or that are a link scanner's
    (`scanner`), as columns."""
    caught: dict[str, list[Any]] = {"agent": [], "filter": [], "scanner": []}
    for agent in values:
        verdict = agent_filter(str(agent), filters)
        scanner = filters.link_scanners and agent_lists.is_scanner(str(agent))
        if verdict is not None or scanner:
            caught["agent"].append(agent)
            caught["filter"].append(verdict)
            caught["scanner"].append(scanner)
    return caught


def ip_verdicts(values: Iterable[str], filters: Filters) -> dict[str, list[Any]]:
    """The addresses in the `ips` ranges, as columns."""
    caught: dict[str, list[Any]] = {"ip": [], "filter": []}
    for ip in values:
        verdict = ip_filter(str(ip), filters)
        if verdict is not None:
            caught["ip"].append(ip)
            caught["filter"].append(verdict)
    return caught


def judged_sql(events_table: str, read: Read, tables: dict[str, str | None],
               filters: Filters, q: Callable[[str], str]) -> tuple[str, str] | None:
    """`FROM … LEFT JOIN …` of the events (`e`) with the verdict tables, and the verdict in
    the order of `leadscore.filters.which_filter`; None where nothing can be caught."""
    joined, whens, scanner = f"FROM {q(events_table)} e", [], []
    if tables["ip"] is not None:
        joined += f" LEFT JOIN {q(tables['ip'])} i ON i.ip = e.{q(str(read.ip))}"
        whens.append("WHEN i.filter IS NOT NULL THEN i.filter")
    if tables["agent"] is not None:
        joined += f" LEFT JOIN {q(tables['agent'])} a ON a.agent = e.{q(str(read.agent))}"
        whens.append("WHEN a.filter IS NOT NULL THEN a.filter")
        scanner.append("COALESCE(a.scanner, FALSE)")
    if read.since is not None:
        since = f"e.{q(read.since)}"
        scanner.append(f"({since} >= 0 AND {since} < "
                       f"{float(filters.link_scanner_seconds)!r})")   # finite: validated
    if filters.link_scanners and scanner:
        whens.append(f"WHEN e.event = {literal(CLICKED)} AND ({' OR '.join(scanner)}) "
                     "THEN 'link_scanners'")
    if tables["lead"] is not None:
        joined += f" LEFT JOIN {q(tables['lead'])} l ON l.lead_id = e.lead_id"
        whens.append("WHEN l.filter IS NOT NULL THEN l.filter")
    if not whens:
        return None
    return joined, f"(CASE {' '.join(whens)} END)"


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
    con.register(f"{name}_arrow", typed_columns(columns))
    con.sql(f"CREATE TEMP TABLE {quote(name)} AS SELECT * FROM {quote(name + '_arrow')}")
    con.unregister(f"{name}_arrow")
    return name


def typed_columns(columns: dict[str, list[Any]]) -> pa.Table:
    """A verdict table as Arrow: text columns, `scanner` a flag (typed even where all null)."""
    return pa.table({name: pa.array(values, pa.bool_() if name == "scanner" else pa.string())
                     for name, values in columns.items()})


def ordered(counts: dict[str, int]) -> dict[str, int]:
    return {name: counts[name] for name in FILTERS if name in counts}


def warn_filtered(source: str, counts: dict[str, int], *, stacklevel: int = 4) -> None:
    """A `FilteredEventsWarning`: how many events of `source` each filter kept out."""
    total = sum(counts.values())
    each = ", ".join(f"{name} {n:,}" for name, n in ordered(Counter(counts)).items())
    warnings.warn(FilteredEventsWarning(
        f"{source}: {total:,} event{'s' * (total != 1)} filtered, not scored ({each})"),
        stacklevel=stacklevel)
