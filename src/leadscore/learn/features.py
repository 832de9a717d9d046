"""Candidate features derived from the data, each one a rule the model format can express.

- **Traits** (fit): a numeric trait binned into quantile bands (`{gte: lo, lt: hi}`), a text
  trait by its frequent values (`{eq: v}`), a sparse trait by whether it exists.
- **Events** (engagement): per track event name and per page group (the first path segment:
  `/pricing` covers `/pricing` and `/pricing/*`), in three variants — `once` (the most recent
  event, decayed), `daily` (one per day, decayed) and every event (decayed, capped) — for each
  candidate half-life.

A feature's value is exactly what the engine would add up for a rule with 1 point: a fit
indicator is 0/1; an engagement feature is Σ 2^(−age/half-life) over the events the rule's
`limit` counts, up to its cap. So points × features is the score a learned model gives, and the
tests hold the engine to it. Only events at or before the cut-off are read.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

from leadscore.io.sqltext import quote
from leadscore.timeutil import US_PER_DAY

VARIANTS = ("once", "daily", "every")
HALF_LIVES: tuple[float | None, ...] = (7.0, 14.0, 30.0, 60.0, 120.0, None)


@dataclass(frozen=True)
class Candidate:
    """One candidate rule: a fit band or an engagement source counted one way."""

    name: str
    kind: str                              # fit | engagement
    group: str                             # the trait (fit) or source (engagement)
    condition: dict[str, Any] = field(default_factory=dict)   # fit: ops on the trait
    match: dict[str, Any] = field(default_factory=dict)       # engagement: event / page
    limit: str | None = None               # engagement: once | daily | None (every event)


@dataclass
class FeatureSet:
    """Candidate features of a set of leads as of one cut-off."""

    lead_ids: np.ndarray
    fit: list[Candidate]
    fit_x: np.ndarray                      # (leads, fit candidates), 0/1
    sources: list[tuple[str, dict[str, Any]]]  # engagement sources: (name, match)
    # (half-life or None) → (leads, sources, 3 variants): values before any cap
    engagement_x: dict[float | None, np.ndarray]


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(float(value)) if isinstance(value, float) else str(value)


def trait_candidates(con: duckdb.DuckDBPyConnection, leads: str, *, bins: int = 5,
                     min_support: int = 30, max_levels: int = 12,
                     exclude: tuple[str, ...] = ()) -> list[Candidate]:
    """Fit candidates from the traits of the canonical leads table `leads`."""
    rel = con.sql(f"SELECT * FROM {quote(leads)} LIMIT 0")
    [(n,)] = con.sql(f"SELECT count(*) FROM {quote(leads)}").fetchall()
    out: list[Candidate] = []
    for column, dtype in zip(rel.columns, rel.types, strict=True):
        if column == "lead_id":
            continue
        trait = column.removeprefix("traits.")
        if trait in exclude or column in exclude:
            continue
        q = quote(column)
        [(present, distinct)] = con.sql(f"SELECT count({q}), approx_count_distinct({q}) "
                                        f"FROM {quote(leads)}").fetchall()
        if present < min_support:
            continue
        kind = dtype.id
        numeric = kind in ("bigint", "double", "integer", "float")
        if numeric and distinct > max_levels // 2:
            qs = ", ".join(str(i / bins) for i in range(1, bins))
            [(edges,)] = con.sql(f"SELECT quantile_cont({q}, [{qs}]) FROM "
                                 f"{quote(leads)} WHERE {q} IS NOT NULL").fetchall()
            cuts = sorted({round(float(e), 6) for e in edges})
            bounds = [None, *cuts, None]
            for lo, hi in itertools.pairwise(bounds):
                cond: dict[str, Any] = {}
                if lo is not None:
                    cond["gte"] = _number(lo)
                if hi is not None:
                    cond["lt"] = _number(hi)
                label = (f"{_fmt(lo)}–{_fmt(hi)}" if lo is not None and hi is not None
                         else f"≥ {_fmt(lo)}" if lo is not None else f"< {_fmt(hi)}")
                out.append(Candidate(f"{trait} {label}", "fit", trait, cond))
            continue
        if kind in ("varchar", "boolean", "bigint", "double", "integer", "float"):
            if kind == "varchar" and distinct > max(max_levels * 4, 0.5 * present):
                if present < n - min_support:      # sparse identifiers: does it exist?
                    out.append(Candidate(f"{trait} given", "fit", trait, {"exists": True}))
                continue
            levels = con.sql(f"SELECT {q}, count(*) AS c FROM {quote(leads)} WHERE {q} IS "
                             f"NOT NULL GROUP BY 1 HAVING c >= {min_support} ORDER BY c DESC, 1 "
                             f"LIMIT {max_levels}").fetchall()
            for value, _ in levels:
                out.append(Candidate(f"{trait} = {value}", "fit", trait, {"eq": value}))
            if n - present >= min_support and present >= min_support and kind == "varchar" \
                    and not levels:
                out.append(Candidate(f"{trait} given", "fit", trait, {"exists": True}))
    return out


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{_number(value):,}"


def _condition_sql(column: str, condition: dict[str, Any]) -> str:
    q = quote(column)
    parts = []
    for op, value in condition.items():
        if op == "exists":
            parts.append(f"({q} IS NOT NULL AND CAST({q} AS VARCHAR) <> '')")
        else:
            sql_op = {"eq": "=", "gte": ">=", "lt": "<"}[op]
            parts.append(f"{q} {sql_op} {_literal(value)}")
    return " AND ".join(parts) or "true"


def source_candidates(con: duckdb.DuckDBPyConnection, events: str, as_of_us: int, *,
                      min_support: int = 30, max_sources: int = 30,
                      exclude_events: tuple[str, ...] = ()) -> list[tuple[str, dict[str, Any]]]:
    """Engagement sources seen for at least `min_support` leads before the cut-off:
    (name, match) with match `{event: name}` or `{page: [/seg, /seg/*]}`."""
    rows = con.sql(f"""
        SELECT src, count(DISTINCT lead_id) AS leads FROM (
            SELECT lead_id, {_source_sql()} AS src FROM {quote(events)} WHERE ts <= {as_of_us})
        WHERE src IS NOT NULL GROUP BY src HAVING leads >= {min_support}
        ORDER BY leads DESC, src LIMIT {max_sources + len(exclude_events)}""").fetchall()
    out: list[tuple[str, dict[str, Any]]] = []
    for src, _ in rows:
        kind, value = src.split(":", 1)
        if kind == "event":
            if value in exclude_events:
                continue
            out.append((value, {"event": value}))
        elif not any(mark in value for mark in "*?"):
            globs = [value] if value == "/" else [value, f"{value}/*"]
            out.append((f"{value} pages" if value != "/" else "home page", {"page": globs}))
    return out[:max_sources]


def _source_sql() -> str:
    return ("CASE WHEN type = 'page' THEN 'page:/' || split_part(path, '/', 2) "
            "WHEN event IS NOT NULL THEN 'event:' || event END")


def build(con: duckdb.DuckDBPyConnection, population: str, as_of_us: int, *,
          leads: str | None, events: str | None, fit: list[Candidate],
          sources: list[tuple[str, dict[str, Any]]],
          half_lives: tuple[float | None, ...] = HALF_LIVES) -> FeatureSet:
    """The features of the leads in `population` (a table with `lead_id`) as of the cut-off."""
    ids = np.array([r[0] for r in con.sql(
        f"SELECT lead_id FROM {quote(population)} ORDER BY lead_id").fetchall()], dtype=object)
    fit_x = np.zeros((len(ids), len(fit)), dtype=np.float32)
    if fit and leads is not None:
        columns = ", ".join(
            f"CAST(coalesce({_condition_sql(_column(con, leads, c.group), c.condition)}, false)"
            f" AS TINYINT)" for c in fit)
        table = con.sql(f"SELECT {columns} FROM {quote(population)} AS p LEFT JOIN "
                        f"{quote(leads)} AS l USING (lead_id) ORDER BY p.lead_id").fetchnumpy()
        for j, values in enumerate(table.values()):
            fit_x[:, j] = np.asarray(values, dtype=np.float32)
    engagement = {h: np.zeros((len(ids), len(sources), len(VARIANTS)), dtype=np.float32)
                  for h in half_lives}
    if sources and events is not None:
        keys = {("event:" + m["event"]) if "event" in m else
                ("page:" + m["page"][0]): i for i, (_, m) in enumerate(sources)}
        src_values = ", ".join(_literal(k) for k in keys)
        aggregates = []
        for i, h in enumerate(half_lives):
            decay = "1.0" if h is None else f"pow(2.0, -age / {h})"
            aggregates.append(f"max({decay}) AS once_{i}")
            aggregates.append(f"sum({decay}) AS daily_{i}")
            aggregates.append(f"sum(n_{i}) AS every_{i}")
        per_day = ", ".join(
            f"sum({'1.0' if h is None else f'pow(2.0, -age_each / {h})'}) AS n_{i}"
            for i, h in enumerate(half_lives))
        result = con.sql(f"""
            WITH e AS (
                SELECT e.lead_id, {_source_sql()} AS src, e.ts
                FROM {quote(events)} AS e SEMI JOIN {quote(population)} AS p
                     ON p.lead_id = e.lead_id
                WHERE e.ts <= {as_of_us}),
            d AS (
                SELECT lead_id, src, ({as_of_us} - max(ts)) / {float(US_PER_DAY)} AS age,
                       {per_day}
                FROM (SELECT *, ({as_of_us} - ts) / {float(US_PER_DAY)} AS age_each FROM e
                      WHERE src IN ({src_values}))
                GROUP BY lead_id, src, ts // {US_PER_DAY})
            SELECT lead_id, src, {", ".join(aggregates)} FROM d GROUP BY lead_id, src
        """).fetchnumpy()
        row_of = {lead: i for i, lead in enumerate(ids)}
        rows = np.fromiter((row_of[x] for x in result["lead_id"]), dtype=np.int64,
                           count=len(result["lead_id"]))
        cols = np.fromiter((keys[x] for x in result["src"]), dtype=np.int64,
                           count=len(result["src"]))
        for i, h in enumerate(half_lives):
            for v, variant in enumerate(VARIANTS):
                values = np.nan_to_num(np.asarray(result[f"{variant}_{i}"], dtype=np.float64))
                engagement[h][rows, cols, v] = values
    return FeatureSet(ids, fit, fit_x, sources, engagement)


def _column(con: duckdb.DuckDBPyConnection, leads: str, trait: str) -> str:
    names = con.sql(f"SELECT * FROM {quote(leads)} LIMIT 0").columns
    for name in (trait, f"traits.{trait}"):
        if name in names:
            return name
    raise KeyError(trait)


def describe(condition: dict[str, Any]) -> str:
    return json.dumps(condition)
