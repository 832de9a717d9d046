"""Candidate features derived from the data, each one a rule the model format can express.

- **Traits** (fit): see `traits` — identifiers and dates left out, numbers cut by optimal
  binning, text by its frequent values with the rest pooled. A lead's value is its band.
- **Events** (engagement): per track event name and per page group (the first path segment:
  `/pricing` covers `/pricing` and `/pricing/*`), in three variants — `once` (the most recent
  event, decayed: recency), `daily` (one per day, decayed) and every event (decayed, capped:
  counts) — for each candidate half-life.
- **Event properties** (engagement): a numeric property of an event or page group becomes
  threshold sources, `where: {properties.pricing_page_views: {gte: 2}}`, at readable cuts of
  its distribution (the median, upper quartile, 90th percentile), counted the same three ways.

An engagement feature's value is exactly what the engine would add up for a rule with 1 point:
Σ 2^(−age/half-life) over the events the rule's `limit` counts, up to its cap. So points ×
features is the score a learned model gives, and the tests hold the engine to it. Only events at
or before the cut-off are read.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

from leadscore.io.sqltext import quote
from leadscore.learn.traits import Trait, band_index
from leadscore.timeutil import US_PER_DAY

VARIANTS = ("once", "daily", "every")
HALF_LIVES: tuple[float | None, ...] = (7.0, 14.0, 30.0, 60.0, 120.0, None)
PROPERTY_QUANTILES = (0.5, 0.75, 0.9)


@dataclass(frozen=True)
class Candidate:
    """One engagement candidate rule: a source counted one way."""

    name: str
    kind: str                              # engagement
    group: str                             # the source
    match: dict[str, Any] = field(default_factory=dict)       # event / page (+ where)
    limit: str | None = None               # once | daily | None (every event)


@dataclass(frozen=True)
class Source:
    """Events an engagement rule could count: its name, its YAML match, and the same match as
    SQL over canonical events."""

    name: str
    match: dict[str, Any]
    sql: str


@dataclass
class FeatureSet:
    """Candidate features of a set of leads as of one cut-off."""

    lead_ids: np.ndarray
    traits: list[Trait]
    bands: np.ndarray                      # (leads, traits): band index, -1 for none
    sources: list[Source]
    # (half-life or None) → (leads, sources, 3 variants): values before any cap
    engagement_x: dict[float | None, np.ndarray]


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(float(value)) if isinstance(value, float) else str(value)


def source_candidates(con: duckdb.DuckDBPyConnection, events: str, as_of_us: int, *,
                      min_support: int = 30, max_sources: int = 30,
                      exclude_events: tuple[str, ...] = ()) -> list[Source]:
    """Engagement sources seen for at least `min_support` leads before the cut-off:
    `{event: name}` or `{page: [/seg, /seg/*]}`."""
    rows = con.sql(f"""
        SELECT src, count(DISTINCT lead_id) AS leads FROM (
            SELECT lead_id, {_source_sql()} AS src FROM {quote(events)} WHERE ts <= {as_of_us})
        WHERE src IS NOT NULL GROUP BY src HAVING leads >= {min_support}
        ORDER BY leads DESC, src LIMIT {max_sources + len(exclude_events)}""").fetchall()
    out: list[Source] = []
    for src, _ in rows:
        kind, value = src.split(":", 1)
        key = f"{_source_sql()} = {_literal(src)}"
        if kind == "event":
            if value in exclude_events:
                continue
            out.append(Source(value, {"event": value}, key))
        elif not any(mark in value for mark in "*?"):
            globs = [value] if value == "/" else [value, f"{value}/*"]
            out.append(Source(f"{value} pages" if value != "/" else "home page",
                              {"page": globs}, key))
    return out[:max_sources]


def property_candidates(con: duckdb.DuckDBPyConnection, events: str, as_of_us: int,
                        sources: list[Source], *, min_support: int = 30,
                        max_sources: int = 30) -> list[Source]:
    """Threshold sources on the numeric properties of `sources` (see module doc)."""
    rel = con.sql(f"SELECT * FROM {quote(events)} LIMIT 0")
    columns = [c for c, t in zip(rel.columns, rel.types, strict=True)
               if c.startswith("properties.") and t.id in _NUMERIC]
    columns += [c for c, t in zip(rel.columns, rel.types, strict=True)
                if c.startswith("properties.") and t.id == "varchar" and _numeric_text(
                    con, events, c)]
    if not sources or not columns:
        return []
    keys = {_key(s): s for s in sources}
    listed = ", ".join(_literal(k) for k in keys)
    out: list[tuple[int, Source]] = []
    for column in columns:
        q = quote(column)
        quantiles = ", ".join(str(p) for p in PROPERTY_QUANTILES)
        rows = con.sql(f"""
            SELECT src, quantile_cont(v, [{quantiles}]), count(DISTINCT lead_id), min(v)
            FROM (SELECT lead_id, {_source_sql()} AS src, TRY_CAST({q} AS DOUBLE) AS v
                  FROM {quote(events)} WHERE ts <= {as_of_us})
            WHERE v IS NOT NULL AND isfinite(v) AND src IN ({listed})
            GROUP BY src HAVING count(DISTINCT lead_id) >= {min_support}""").fetchall()
        for src, cuts, _, low in rows:
            base = keys[src]
            prop = column.removeprefix("properties.")
            for cut in sorted({_readable(float(c)) for c in cuts}):
                if cut <= low:
                    continue
                [(leads,)] = con.sql(
                    f"SELECT count(DISTINCT lead_id) FROM {quote(events)} WHERE ts <= "
                    f"{as_of_us} AND {base.sql} AND TRY_CAST({q} AS DOUBLE) >= {cut!r}"
                ).fetchall()
                if leads < min_support:
                    continue
                where = {column: {"gte": _number(cut)}}
                out.append((leads, Source(
                    f"{base.name} with {prop} ≥ {_number(cut):,}", {**base.match, "where": where},
                    f"{base.sql} AND TRY_CAST({q} AS DOUBLE) >= {cut!r}")))
    out.sort(key=lambda pair: -pair[0])
    return [source for _, source in out[:max_sources]]


_NUMERIC = ("bigint", "double", "integer", "float", "smallint", "tinyint", "hugeint",
            "decimal", "ubigint", "uinteger")


def _numeric_text(con: duckdb.DuckDBPyConnection, events: str, column: str) -> bool:
    q = quote(column)
    [(given, numbers)] = con.sql(
        f"SELECT count({q}), count(TRY_CAST({q} AS DOUBLE)) FROM (SELECT {q} FROM "
        f"{quote(events)} WHERE {q} IS NOT NULL AND {q} <> '' LIMIT 10000)").fetchall()
    return bool(given) and numbers >= 0.95 * given


def _key(source: Source) -> str:
    match = source.match
    if "event" in match:
        return "event:" + match["event"]
    return "page:" + match["page"][0]


def _readable(value: float) -> float:
    if value == 0 or not math.isfinite(value):
        return value
    if abs(value) >= 10:
        digits = 1 - math.floor(math.log10(abs(value)))
    else:
        digits = 0 if abs(value) >= 1 else 2
    rounded = round(value, digits)
    return float(rounded if rounded else value)


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _source_sql() -> str:
    return ("CASE WHEN type = 'page' THEN 'page:/' || split_part(path, '/', 2) "
            "WHEN event IS NOT NULL THEN 'event:' || event END")


def build(con: duckdb.DuckDBPyConnection, population: str, as_of_us: int, *,
          leads: str | None, events: str | None, traits: list[Trait], sources: list[Source],
          half_lives: tuple[float | None, ...] = HALF_LIVES) -> FeatureSet:
    """The features of the leads in `population` (a table with `lead_id`) as of the cut-off."""
    ids = np.array([r[0] for r in con.sql(
        f"SELECT lead_id FROM {quote(population)} ORDER BY lead_id").fetchall()], dtype=object)
    bands = (band_index(con, population, leads, traits, as_of_us) if traits and leads is not None
             else np.full((len(ids), 0), -1, dtype=np.int16))
    engagement = {h: np.zeros((len(ids), len(sources), len(VARIANTS)), dtype=np.float32)
                  for h in half_lives}
    if sources and events is not None:
        matches = ", ".join(f"CASE WHEN {s.sql} THEN {i} END" for i, s in enumerate(sources))
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
            WITH m AS (
                SELECT e.lead_id, e.ts, unnest([{matches}]) AS src
                FROM {quote(events)} AS e SEMI JOIN {quote(population)} AS p
                     ON p.lead_id = e.lead_id
                WHERE e.ts <= {as_of_us}),
            e AS (SELECT lead_id, ts, src FROM m WHERE src IS NOT NULL),
            d AS (
                SELECT lead_id, src, ({as_of_us} - max(ts)) / {float(US_PER_DAY)} AS age,
                       {per_day}
                FROM (SELECT *, ({as_of_us} - ts) / {float(US_PER_DAY)} AS age_each FROM e)
                GROUP BY lead_id, src, ts // {US_PER_DAY})
            SELECT lead_id, src, {", ".join(aggregates)} FROM d GROUP BY lead_id, src
        """).fetchnumpy()
        row_of = {lead: i for i, lead in enumerate(ids)}
        rows = np.fromiter((row_of[x] for x in result["lead_id"]), dtype=np.int64,
                           count=len(result["lead_id"]))
        cols = np.asarray(result["src"], dtype=np.int64)
        for i, h in enumerate(half_lives):
            for v, variant in enumerate(VARIANTS):
                values = np.nan_to_num(np.asarray(result[f"{variant}_{i}"], dtype=np.float64))
                engagement[h][rows, cols, v] = values
    return FeatureSet(ids, traits, bands, sources, engagement)


def describe(condition: dict[str, Any]) -> str:
    return json.dumps(condition)
