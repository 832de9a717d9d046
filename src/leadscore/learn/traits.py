"""Fit candidates: each trait cut into the bands a marketer would write, never an identifier.

- **Identifiers are never candidates**: a column whose name says id (`account_id`, `uuid`,
  `externalId`), whose values look like ids (`acct_000312`, UUIDs, long hex or digit runs),
  an integer column that is a dense sequence of unique values, a text column unique or nearly
  unique per lead, or a high-cardinality text column whose frequent values cover less than half
  of the leads (no value is a segment: company names, cities).
- **Dates and timestamps are never equality candidates**: a column typed date / timestamp, or
  text that reads as ISO dates, becomes an `age_of` rule — its age in days as of the cut-off
  (`model.ages`), cut by optimal binning like a number ("signed up in the last 30 days":
  `{lt: 30}`), so the rule moves with time as the engines score it. Without a cut-off
  (`as_of_us`) a date is left out; epoch numbers named like dates always are.
- **Numbers** are cut by optimal binning (`optbinning`, monotonic where the event rate says so)
  into `{gte, lt}` bands with readable edges; missing values get an `{exists: false}` band when
  enough leads have none.
- **Text and booleans** keep their frequent values (`{eq: v}`, at least `min_support` leads
  each, at most `max_levels`) and pool the rest in one `{not_in: [...]}` band.

A trait becomes one `attribute` + `bands` rule; the scorecard gives each band points from its
weight of evidence (WoE) times one coefficient per trait, so points follow the binning's trend.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np

from leadscore.io.sqltext import quote

ID_NAME = re.compile(r"(^|[._\s-])(id|ids|uuid|guid|key|pk)$")
ID_VALUE = re.compile(r"^[A-Za-z_]{0,12}[-_:]?\d{4,}$|^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-"
                      r"[0-9a-fA-F-]{19,}$|^[0-9a-fA-F]{16,}$|^(?=.*\d)[A-Za-z0-9]{15,18}$")
DATE_VALUE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}.*)?$")
DATE_NAME = re.compile(r"(_at|_date|_time|_ts|date|time|timestamp)$")
DATE_TYPES = ("date", "timestamp", "timestamp with time zone", "timestamp_s", "timestamp_ms",
              "timestamp_ns", "time")
# The reason `_identifies` gives a date: an age band candidate, never an equality one.
DATED = "a date: its age in days, never equality"
# Optimal binning: the event rate rises or falls over the bins (whichever fits the data).
TREND = "auto_asc_desc"
MIN_BIN_SHARE = 0.02           # a bin holds at least this share of the leads (and 30 of them)
NUMERIC_TYPES = ("bigint", "double", "integer", "float", "smallint", "tinyint", "hugeint",
                 "decimal", "ubigint", "uinteger", "usmallint", "utinyint")


@dataclass(frozen=True)
class Band:
    """One band: the conditions on the trait (all hold) and a label for people."""

    condition: dict[str, Any]
    label: str


@dataclass(frozen=True)
class Trait:
    """A fit candidate: a trait (the YAML `attribute`) and its bands, first match wins."""

    name: str
    column: str
    bands: tuple[Band, ...]
    how: str
    age: bool = False        # the bands compare the trait's age in days (`age_of`)


@dataclass(frozen=True)
class Profile:
    """The fit candidates of a leads table, and every column left out with the reason."""

    traits: list[Trait]
    skipped: dict[str, str]

    def describe_skipped(self) -> str:
        """One line: the columns left out, grouped by why."""
        groups: dict[str, list[str]] = {}
        for name, why in self.skipped.items():
            reason = why.split(" (")[0].split(":")[0]
            groups.setdefault(reason, []).append(name)
        return "not fit candidates — " + "; ".join(
            f"{reason}: {', '.join(names)}" for reason, names in groups.items())


def trait_candidates(con: duckdb.DuckDBPyConnection, leads: str, labelled: str, *,
                     as_of_us: int | None = None, min_support: int = 30, max_levels: int = 12,
                     max_bins: int = 6, exclude: tuple[str, ...] = ()) -> Profile:
    """Fit candidates from the canonical leads table `leads`; numbers (and dates' ages in days
    as of `as_of_us`) are binned against the outcomes of `labelled` (a table of
    `lead_id, converted`)."""
    rel = con.sql(f"SELECT * FROM {quote(leads)} LIMIT 0")
    [(n,)] = con.sql(f"SELECT count(*) FROM {quote(labelled)}").fetchall()
    traits: list[Trait] = []
    skipped: dict[str, str] = {}
    for column, dtype in zip(rel.columns, rel.types, strict=True):
        if column == "lead_id":
            continue
        name = column.removeprefix("traits.")
        if name in exclude or column in exclude:
            continue
        kind = dtype.id
        why = _identifies(con, leads, labelled, column, name, kind, min_support, max_levels)
        dated = why is not None and why.startswith(DATED)
        if dated:
            if as_of_us is None:
                skipped[name] = "a date (no cut-off to read its age at)"
                continue
            trait = _age(con, leads, labelled, name, column, str(dtype), as_of_us, n,
                         min_support, max_bins)
            if trait is None:
                skipped[name] = "a date whose age makes one band only"
            else:
                traits.append(trait)
            continue
        if why:
            skipped[name] = why
            continue
        q = quote(column)
        rows = con.sql(f"SELECT l.{q} AS v, p.converted AS y FROM {quote(labelled)} AS p "
                       f"LEFT JOIN {quote(leads)} AS l USING (lead_id)").fetchnumpy()
        present = _present(rows["v"])
        if present.sum() < min_support:
            skipped[name] = f"fewer than {min_support} leads have it"
            continue
        y = np.asarray(rows["y"], dtype=float)
        if kind not in (*NUMERIC_TYPES, "varchar", "boolean"):
            skipped[name] = f"a {kind} column: no band for it"
            continue
        if kind in NUMERIC_TYPES:
            values = np.asarray(np.where(present, rows["v"], np.nan), dtype=float)
            trait = _numeric(name, column, values, y, n, min_support, max_bins)
        else:
            trait = _levels(name, column, rows["v"], present, min_support, max_levels)
        if trait is None:
            skipped[name] = "one band only (no cut worth making)"
        else:
            traits.append(trait)
    return Profile(traits, skipped)


def _present(values: Any) -> np.ndarray:
    mask = np.ma.getmaskarray(values) if isinstance(values, np.ma.MaskedArray) else \
        np.zeros(len(values), dtype=bool)
    data = np.ma.getdata(values) if isinstance(values, np.ma.MaskedArray) else values
    out = ~mask
    if data.dtype == object:
        out &= np.array([v is not None and v == v and v != "" for v in data], dtype=bool)
    elif data.dtype.kind == "f":
        out &= ~np.isnan(data)
    return out


def _identifies(con: duckdb.DuckDBPyConnection, leads: str, labelled: str, column: str,
                name: str, kind: str, min_support: int, max_levels: int) -> str | None:
    """Why the column is no fit candidate (an identifier, a date), or None."""
    leaf = name.rsplit(".", 1)[-1]
    if ID_NAME.search(leaf.lower()) or leaf.endswith(("Id", "ID")) or leaf.lower() == "id":
        return "an identifier (its name)"
    if kind in DATE_TYPES or kind.startswith("timestamp"):
        return DATED + " (its type)"
    q = quote(column)
    [(present, distinct, low, high)] = con.sql(
        f"SELECT count(l.{q}), count(DISTINCT l.{q}), "
        f"{'min(l.' + q + '), max(l.' + q + ')' if kind in NUMERIC_TYPES else 'NULL, NULL'} "
        f"FROM {quote(labelled)} AS p JOIN {quote(leads)} AS l USING (lead_id)").fetchall()
    if not present:
        return None
    if kind in NUMERIC_TYPES:
        if DATE_NAME.search(leaf.lower()) and low is not None and float(low) > 1e8:
            return "a date as epoch numbers (seconds or milliseconds: no age is read from them)"
        dense = high is not None and float(high) - float(low) + 1 <= 1.5 * present
        if distinct == present and present > 100 and dense and float(low).is_integer():
            return "an identifier (unique, sequential integers)"
        return None
    if kind != "varchar":
        return None
    sample = [r[0] for r in con.sql(
        f"SELECT DISTINCT CAST(l.{q} AS VARCHAR) FROM {quote(labelled)} AS p JOIN "
        f"{quote(leads)} AS l USING (lead_id) WHERE l.{q} IS NOT NULL AND l.{q} <> '' "
        f"LIMIT 500").fetchall()]
    if sample and sum(bool(DATE_VALUE.match(v)) for v in sample) >= 0.9 * len(sample):
        return DATED + " (ISO text)"
    if distinct > max_levels and sample and \
            sum(bool(ID_VALUE.match(v)) for v in sample) >= 0.8 * len(sample):
        return "an identifier (values such as " + repr(sample[0]) + ")"
    if distinct >= 0.5 * present and distinct > max_levels:
        return "an identifier (nearly unique per lead)"
    if distinct > 4 * max_levels:
        [(covered,)] = con.sql(
            f"SELECT coalesce(sum(c), 0) FROM (SELECT count(*) AS c FROM {quote(labelled)} AS p "
            f"JOIN {quote(leads)} AS l USING (lead_id) WHERE l.{q} IS NOT NULL GROUP BY l.{q} "
            f"HAVING c >= {min_support} ORDER BY c DESC LIMIT {max_levels})").fetchall()
        if covered < 0.5 * present:
            return (f"an identifier ({distinct:,} values, its {max_levels} most frequent "
                    f"cover {covered / present:.0%} of the leads)")
    return None


def age_sql(column: str, sql_type: str, as_of_us: int) -> str:
    """DuckDB SQL of a date column's age in days at `as_of_us` (`l.` the leads table), as
    every engine reads an `age_of` trait; NULL where it holds no date."""
    from sqlglot import exp

    from leadscore.engine.sql.ages import age_days
    from leadscore.engine.sql.dialects import DuckDB

    found = age_days(exp.column(column, table="l", quoted=True), sql_type, as_of_us, DuckDB())
    return "NULL" if found is None else found.sql(dialect="duckdb")


def _age(con: duckdb.DuckDBPyConnection, leads: str, labelled: str, name: str, column: str,
         sql_type: str, as_of_us: int, n: int, min_support: int, max_bins: int
         ) -> Trait | None:
    """A date as an `age_of` candidate: its age in days at the cut-off, optimally binned."""
    rows = con.sql(f"SELECT {age_sql(column, sql_type, as_of_us)} AS v, p.converted AS y "
                   f"FROM {quote(labelled)} AS p LEFT JOIN {quote(leads)} AS l "
                   f"USING (lead_id)").fetchnumpy()
    ages = np.asarray(np.ma.filled(np.ma.asarray(rows["v"], dtype=float), np.nan), dtype=float)
    if (~np.isnan(ages)).sum() < min_support:
        return None
    y = np.asarray(rows["y"], dtype=float)
    # Whole days: "signed up in the last 30 days", not 29.73.
    trait = _numeric(name, column, ages, y, n, min_support, max_bins, unit=" days old",
                     whole=True)
    if trait is None:
        return None
    return Trait(name, column, trait.bands, f"age in days at the cut-off: {trait.how}",
                 age=True)


def _numeric(name: str, column: str, x: np.ndarray, y: np.ndarray, n: int,
             min_support: int, max_bins: int, *, unit: str = "", whole: bool = False
             ) -> Trait | None:
    from optbinning import OptimalBinning

    given = ~np.isnan(x)
    integer = whole or bool(np.all(np.equal(np.mod(x[given], 1), 0)))
    cuts: list[float] = []
    trend = "one band"
    if 0 < y[given].sum() < given.sum():
        binning = OptimalBinning(name=name, dtype="numerical", monotonic_trend=TREND,
                                 max_n_bins=max_bins,
                                 min_bin_size=max(min_support / max(n, 1), MIN_BIN_SHARE))
        binning.fit(x[given], y[given])
        cuts = sorted({_readable(float(s), integer) for s in binning.splits})
    bands: list[Band] = []
    edges: list[float | None] = [None, *cuts, None]
    for lo, hi in itertools.pairwise(edges):
        cond: dict[str, Any] = {}
        if lo is not None:
            cond["gte"] = _number(lo)
        if hi is not None:
            cond["lt"] = _number(hi)
        if not cond:
            cond = {"exists": True}
        label = (f"{_fmt(lo)}–{_fmt(hi)}{unit}" if lo is not None and hi is not None
                 else f"≥ {_fmt(lo)}{unit}" if lo is not None else
                 f"< {_fmt(hi)}{unit}" if hi is not None else "given")
        bands.append(Band(cond, label))
    if (~given).sum() >= min_support:
        bands.append(Band({"exists": False}, "not given"))
    if len(bands) < 2:
        return None
    if len(cuts) >= 1:
        inside = [given & _between(x, lo, hi) for lo, hi in itertools.pairwise(edges)]
        diffs = np.diff([float(y[m].mean()) for m in inside if m.any()])
        trend = ("rising" if np.all(diffs >= 0) else "falling" if np.all(diffs <= 0)
                 else "not monotonic")
    return Trait(name, column, tuple(bands),
                 f"optimal binning, {len(cuts) + 1} bins, conversion {trend}")


def _between(x: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    ok = np.ones(len(x), dtype=bool)
    with np.errstate(invalid="ignore"):
        if lo is not None:
            ok &= x >= lo
        if hi is not None:
            ok &= x < hi
    return ok


def _levels(name: str, column: str, values: Any, present: np.ndarray, min_support: int,
            max_levels: int) -> Trait | None:
    data = np.ma.getdata(values) if isinstance(values, np.ma.MaskedArray) else values
    given = [v for v, p in zip(data, present, strict=True) if p]
    counts: dict[Any, int] = {}
    for v in given:
        counts[v] = counts.get(v, 0) + 1
    frequent = sorted((v for v, c in counts.items() if c >= min_support),
                      key=lambda v: (-counts[v], str(v)))[:max_levels]
    bands = [Band({"eq": _plain(v)}, f"= {v}") for v in frequent]
    rest = len(given) - sum(counts[v] for v in frequent)
    if frequent and rest >= min_support:
        bands.append(Band({"not_in": [_plain(v) for v in frequent]}, "any other value"))
    if (~present).sum() >= min_support:
        bands.append(Band({"exists": False}, "not given"))
    if len(bands) < 2:
        return None
    pooled = f", {len(counts) - len(frequent)} others pooled" if rest >= min_support else ""
    return Trait(name, column, tuple(bands), f"{len(frequent)} frequent values{pooled}")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _readable(value: float, integer: bool) -> float:
    """A cut a person would write: the next whole number for whole-number traits, else three
    significant digits."""
    if integer:
        return float(math.ceil(value))
    if value == 0:
        return 0.0
    digits = 2 - math.floor(math.log10(abs(value)))
    return float(round(value, digits))


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{_number(value):,}"


def band_sql(q: str, condition: dict[str, Any]) -> str:
    """SQL of one band's condition on the SQL expression `q`, with the model format's
    semantics (a missing value fails every operator but `exists: false`)."""
    missing = f"({q} IS NULL OR CAST({q} AS VARCHAR) = '')"
    parts = []
    for op, value in condition.items():
        if op == "exists":
            parts.append(f"NOT {missing}" if value else missing)
        elif op in ("eq", "not_in"):
            values = value if isinstance(value, list) else [value]
            listed = ", ".join(_literal(v) for v in values)
            test = "IN" if op == "eq" else "NOT IN"
            parts.append(f"(NOT {missing} AND {_typed(q, values)} {test} ({listed}))")
        else:
            sql_op = {"gte": ">=", "lt": "<"}[op]
            parts.append(f"TRY_CAST({q} AS DOUBLE) {sql_op} {float(value)!r}")
    return " AND ".join(parts) or "true"


def _typed(q: str, values: list[Any]) -> str:
    if all(isinstance(v, bool) for v in values):
        return f"TRY_CAST({q} AS BOOLEAN)"
    return f"CAST({q} AS VARCHAR)"


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "'" + str(value).replace("'", "''") + "'"


def band_index(con: duckdb.DuckDBPyConnection, population: str, leads: str,
               traits: list[Trait], as_of_us: int | None = None) -> np.ndarray:
    """(leads of `population` ordered by lead_id, traits): the first band each lead falls in,
    or -1 for none — as the engine picks a band (an `age_of` trait's at `as_of_us`)."""
    cases = []
    shape = con.sql(f"SELECT * FROM {quote(leads)} LIMIT 0")
    types = {c: str(t) for c, t in zip(shape.columns, shape.types, strict=True)}
    for trait in traits:
        column = f"l.{quote(trait.column)}"
        if trait.age:
            if as_of_us is None:
                raise ValueError(f"trait {trait.name!r} is an age: band_index needs as_of_us")
            column = f"({age_sql(trait.column, types[trait.column], as_of_us)})"
        whens = " ".join(f"WHEN {band_sql(column, b.condition)} THEN {i}"
                         for i, b in enumerate(trait.bands))
        cases.append(f"CASE {whens} ELSE -1 END")
    if not traits:
        [(count,)] = con.sql(f"SELECT count(*) FROM {quote(population)}").fetchall()
        return np.full((count, 0), -1, dtype=np.int16)
    table = con.sql(f"SELECT {', '.join(cases)} FROM {quote(population)} AS p LEFT JOIN "
                    f"{quote(leads)} AS l USING (lead_id) ORDER BY p.lead_id").fetchnumpy()
    return np.column_stack([np.asarray(v, dtype=np.int16) for v in table.values()])
