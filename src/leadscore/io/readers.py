"""Read events and leads from files and data frames into canonical DuckDB views.

Canonical events: `lead_id VARCHAR, ts BIGINT` (µs since the epoch, UTC), `type`, `event`,
`path` (no query string or fragment), then `"properties.<x>"` and `"context.<x>"` columns.
Canonical leads: `lead_id VARCHAR`, `"traits.<x>"`, `"account.<x>"`.

Validation runs in DuckDB, so a file is streamed, never loaded into Python: the canonical view
keeps the good rows, one counting pass tells how many were bad, and only the bad ones (if any)
are fetched with their row numbers. Nothing is dropped without being counted.
"""

from __future__ import annotations

import glob as globbing
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from leadscore.errors import EventError, InputError
from leadscore.events import EVENT_TYPES, Event, Lead, lead_from_row, nested_columns
from leadscore.io import segment, segment_lines
from leadscore.io.sqltext import literal, quote
from leadscore.io.writers import write_table

# Rejected rows kept in a report (the count is always exact).
MAX_REJECTED_KEPT = 100_000
_sequence = itertools.count()

REJECTED_SCHEMA = pa.schema([("row", pa.int64()), ("field", pa.string()),
                             ("reason", pa.string()), ("value", pa.string())])


@dataclass
class ReadReport:
    """What a reader registered and what it could not use."""

    source: str
    table: str
    rows: int
    rejected: int
    rejected_rows: pa.Table = field(repr=False)
    columns: dict[str, str] = field(default_factory=dict)
    other_messages: dict[str, int] = field(default_factory=dict)

    def write_rejected(self, path: str | Path) -> None:
        """Write the rejected rows (row, field, reason, value) as CSV, Parquet or JSON."""
        write_table(self.rejected_rows, path)


# ----------------------------------------------------------------------------- sources

def source_files(source: str | Path) -> tuple[str, list[str]]:
    """A path, directory or glob as (label, files); a missing file is an InputError."""
    text = str(source)
    if any(mark in text for mark in "*?["):
        files = sorted(globbing.glob(text, recursive=True))
        if not files:
            raise InputError(f"{text}: no file matches this pattern")
        return text, files
    path = Path(text)
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob("*.parquet"))
        if not files:
            raise InputError(f"{text}: the directory holds no .parquet file")
        return text, files
    if not path.exists():
        raise InputError(f"{text}: file not found")
    return text, [text]


def _register_source(source: Any, con: duckdb.DuckDBPyConnection, raw: str,
                     kind: str, strict: bool) -> tuple[str, segment.Rejected | None,
                                                       dict[str, int]]:
    """Register `source` in `con` as the view/table `raw`: (label, rejected by parsing, others).

    `kind` is "events" or "leads" (Segment JSON files hold both)."""
    if isinstance(source, str | Path):
        label, files = source_files(source)
        suffix = Path(files[0]).suffix.lower()
        if suffix in segment.JSON_SUFFIXES:
            if len(files) != 1:
                raise InputError(f"{label}: read JSON files one at a time")
            parse = segment.event_table if kind == "events" else segment.lead_table
            table, rejected, others = parse(Path(files[0]), strict=strict)
            con.register(raw, table)
            return label, rejected, dict(others)
        listed = "[" + ", ".join(literal(f) for f in files) + "]"
        if suffix in (".parquet", ".pq"):
            reader = f"read_parquet({listed}, union_by_name = true)"
        elif suffix in (".csv", ".tsv", ".txt"):
            reader = csv_reader(con, listed, label)
        else:
            raise InputError(f"{label}: unknown file type {suffix!r}; expected .parquet, "
                             ".csv, .jsonl, .ndjson or .json")
        try:
            con.sql(f"CREATE OR REPLACE TEMP VIEW {quote(raw)} AS SELECT * FROM {reader}")
        except duckdb.Error as exc:
            raise InputError(f"{label}: cannot read: {exc}") from None
        return label, None, {}
    table = as_arrow(source)
    con.register(raw, table)
    return f"<{type(source).__module__.split('.')[0]} {type(source).__name__}>", None, {}


def csv_reader(con: duckdb.DuckDBPyConnection, listed: str, label: str) -> str:
    """read_csv with the identifying columns read as text (parsed and checked here)."""
    try:
        names = con.sql(f"SELECT * FROM read_csv({listed}) LIMIT 0").columns
    except duckdb.Error as exc:
        raise InputError(f"{label}: cannot read as CSV: {exc}") from None
    text = [n for n in names if n in ("lead_id", "timestamp", "type", "event", "path")]
    types = ", ".join(f"{literal(n)}: 'VARCHAR'" for n in text)
    return f"read_csv({listed}, types = {{{types}}})" if types else f"read_csv({listed})"


def as_arrow(source: Any) -> pa.Table:
    if isinstance(source, pa.Table):
        return source
    if isinstance(source, pa.RecordBatch):
        return pa.Table.from_batches([source])
    module = type(source).__module__.split(".")[0]
    if module == "pandas":
        return pa.Table.from_pandas(source, preserve_index=False)
    if module == "polars":
        return source.to_arrow()
    raise InputError(f"cannot read events or leads from a {type(source).__name__}; expected "
                     "a file path, a pyarrow Table, a pandas or a polars DataFrame")


# ----------------------------------------------------------------------------- columns

def column_types(con: duckdb.DuckDBPyConnection, raw: str) -> list[tuple[str, Any]]:
    rel = con.sql(f"SELECT * FROM {quote(raw)} LIMIT 0")
    return list(zip(rel.columns, rel.types, strict=True))


_INTEGER = {"tinyint", "smallint", "integer", "bigint", "utinyint", "usmallint", "uinteger"}
_FLOAT = {"float", "double", "decimal", "ubigint", "hugeint", "uhugeint"}


def _value_columns(expr: str, name: str, dtype: Any) -> list[tuple[str, str, str]]:
    """(canonical name, SQL, type) for a property/trait column; structs flatten to dots."""
    kind = dtype.id
    if kind == "struct":
        out = []
        for child, child_type in dtype.children:
            out += _value_columns(f"struct_extract({expr}, {literal(child)})",
                                  f"{name}.{child}", child_type)
        return out
    if kind == "boolean":
        return [(name, expr, "BOOLEAN")]
    if kind in _INTEGER:
        return [(name, f"CAST({expr} AS BIGINT)", "BIGINT")]
    if kind in _FLOAT:
        return [(name, f"CAST({expr} AS DOUBLE)", "DOUBLE")]
    if kind == "varchar":
        return [(name, expr, "VARCHAR")]
    if kind == "list":
        return [(name, f"CAST(to_json({expr}) AS VARCHAR)", "VARCHAR")]
    return [(name, f"CAST({expr} AS VARCHAR)", "VARCHAR")]


# A string with a UTC offset or Z at its end (after a time of day).
_OFFSET_RE = r"\d:\d\d(:\d\d(\.\d+)?)?\s*([zZ]|[+-]\d\d(:?\d\d)?)$"


def timestamp_sql(expr: str, kind: str, label: str) -> str:
    """SQL for µs since the epoch (NULL when unreadable), as `parse_timestamp` reads values;
    `kind` is the DuckDB type id of the column."""
    if kind == "timestamp with time zone":
        return f"epoch_us({expr})"
    if kind in ("timestamp", "timestamp_s", "timestamp_ms", "timestamp_ns", "date"):
        return f"epoch_us(CAST({expr} AS TIMESTAMP))"
    if kind in _INTEGER | {"ubigint", "hugeint"}:
        x = f"CAST({expr} AS HUGEINT)"
        return (f"TRY_CAST(CASE WHEN abs({x}) < 100000000000 THEN {x} * 1000000 "
                f"WHEN abs({x}) < 100000000000000 THEN {x} * 1000 ELSE {x} END AS BIGINT)")
    if kind in ("float", "double", "decimal"):
        x = f"CAST({expr} AS DOUBLE)"
        return (f"CASE WHEN NOT isfinite({x}) THEN NULL "
                f"WHEN abs({x}) < 1e11 THEN CAST(round({x} * 1e6) AS BIGINT) "
                f"WHEN abs({x}) < 1e14 THEN CAST(round({x} * 1e3) AS BIGINT) "
                f"ELSE TRY_CAST(trunc({x}) AS BIGINT) END")
    if kind == "varchar":
        # Text: ISO-8601 (with an offset, or naive = UTC); a bare number is an epoch number,
        # as it would have been had the file carried types (CSV does not).
        text = f"trim({expr})"
        number = timestamp_sql(f"TRY_CAST({text} AS DOUBLE)", "double", label)
        return (f"CASE WHEN regexp_matches({text}, '^-?[0-9]+([.][0-9]+)?$') THEN {number} "
                f"WHEN regexp_matches({text}, {literal(_OFFSET_RE)}) "
                f"THEN epoch_us(TRY_CAST({text} AS TIMESTAMPTZ)) "
                f"ELSE epoch_us(TRY_CAST({text} AS TIMESTAMP)) END")
    raise InputError(f"{label}: column 'timestamp' has type {kind}; expected a timestamp, an "
                     "ISO-8601 string or an epoch number")


def _require(label: str, found: list[str], wanted: str, *alternatives: str) -> str:
    for name in (wanted, *alternatives):
        if name in found:
            return name
    raise InputError(f"{label}: no column {wanted!r}; columns found: "
                     f"{', '.join(found) if found else '(none)'}")


def event_columns(columns: list[tuple[str, Any]], label: str
                   ) -> tuple[list[tuple[str, str, str]], list[Check]]:
    """Canonical event columns as (name, SQL, type), the rejection reason SQL and field SQL."""
    names = [n for n, _ in columns]
    types = dict(columns)
    lead_col = _require(label, names, "lead_id")
    ts_col = _require(label, names, "timestamp", "ts")
    lead = f"CAST({quote(lead_col)} AS VARCHAR)"
    ts = timestamp_sql(quote(ts_col), types[ts_col].id, label)
    raw_path = f"CAST({quote('path')} AS VARCHAR)" if "path" in types else "CAST(NULL AS VARCHAR)"
    kind = (f"NULLIF(CAST({quote('type')} AS VARCHAR), '')" if "type" in types
            else "CAST(NULL AS VARCHAR)")
    kind = f"coalesce({kind}, CASE WHEN {raw_path} <> '' THEN 'page' ELSE 'track' END)"
    event = f"CAST({quote('event')} AS VARCHAR)" if "event" in types else "CAST(NULL AS VARCHAR)"
    out = [("lead_id", lead, "VARCHAR"), ("ts", ts, "BIGINT"), ("type", kind, "VARCHAR"),
           ("event", event, "VARCHAR"),
           ("path", f"regexp_replace({raw_path}, '[?#].*$', '')", "VARCHAR")]
    for name, dtype in columns:
        if name in (lead_col, ts_col, "lead_id", "timestamp", "type", "event", "path"):
            continue
        canonical = name if name.startswith(("context.", "properties.")) \
            else f"properties.{name}"
        out += _value_columns(quote(name), canonical, dtype)
    known = ", ".join(literal(t) for t in EVENT_TYPES)
    checks = [
        (f"{lead} IS NULL OR {lead} = ''", "lead_id", "no lead_id", lead),
        (f"({ts}) IS NULL", "timestamp", "not a timestamp", f"CAST({quote(ts_col)} AS VARCHAR)"),
        (f"{kind} NOT IN ({known})", "type", "unknown type (expected track, page or screen)",
         kind),
    ]
    return _dedupe(out), checks


def _lead_columns(columns: list[tuple[str, Any]], label: str
                  ) -> tuple[list[tuple[str, str, str]], list[Check]]:
    names = [n for n, _ in columns]
    lead_col = _require(label, names, "lead_id")
    lead = f"CAST({quote(lead_col)} AS VARCHAR)"
    out = [("lead_id", lead, "VARCHAR")]
    for name, dtype in columns:
        if name == lead_col:
            continue
        canonical = name if name.startswith(("traits.", "account.")) else f"traits.{name}"
        out += _value_columns(quote(name), canonical, dtype)
    checks = [(f"{lead} IS NULL OR {lead} = ''", "lead_id", "no lead_id", lead)]
    return _dedupe(out), checks


def _dedupe(columns: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """`topic` and `properties.topic` both given: the explicit name wins."""
    seen: dict[str, tuple[str, str, str]] = {}
    for column in columns:
        seen[column[0]] = column
    return list(seen.values())


Check = tuple[str, str, str, str]   # condition, field, reason, SQL of the offending value


def _checks_sql(checks: list[Check]) -> str:
    """The reason, field and value columns of the first failing check (NULL: a good row)."""
    def case(part: int, quoted: bool) -> str:
        whens = " ".join(f"WHEN {c[0]} THEN {literal(c[part]) if quoted else c[part]}"
                         for c in checks)
        return f"CASE {whens} END"
    return f"{case(2, True)} AS _reason, {case(1, True)} AS _field, {case(3, False)} AS _value"


# ----------------------------------------------------------------------------- readers

def read_events(source: Any, con: duckdb.DuckDBPyConnection, *, name: str = "events",
                strict: bool = False) -> ReadReport:
    """Register `source` in `con` as the canonical events view `name` (see module doc)."""
    return _read(source, con, name, strict, "events")


def read_leads(source: Any, con: duckdb.DuckDBPyConnection, *, name: str = "leads",
               strict: bool = False) -> ReadReport:
    """Register `source` in `con` as the canonical leads view `name`: lead_id, traits.*,
    account.*. A lead_id given twice keeps its first row; the others are rejected."""
    return _read(source, con, name, strict, "leads")


def _read(source: Any, con: duckdb.DuckDBPyConnection, name: str, strict: bool,
          kind: str) -> ReadReport:
    raw = f"{name}__source_{next(_sequence)}"
    label, parsed, others = _register_source(source, con, raw, kind, strict)
    columns = column_types(con, raw)
    build = event_columns if kind == "events" else _lead_columns
    canonical, checks = build(columns, label)
    select = ", ".join(f"{sql} AS {quote(col)}" for col, sql, _ in canonical)
    checked = f"{name}__checked"
    con.sql(f"CREATE OR REPLACE TEMP VIEW {quote(checked)} AS SELECT {select}, "
                f"{_checks_sql(checks)} FROM {quote(raw)}")
    if kind == "leads":
        [(rows, distinct)] = con.sql(f"SELECT count(lead_id), count(DISTINCT lead_id) "
                                     f"FROM {quote(checked)}").fetchall()
        if rows != distinct:
            # First row per lead_id wins; later ones are rejected as duplicates.
            later = "row_number() OVER (PARTITION BY lead_id ORDER BY _row) > 1"
            con.sql(
                f"CREATE OR REPLACE TEMP VIEW {quote(checked + '_d')} AS SELECT * REPLACE ("
                f"coalesce(_reason, CASE WHEN {later} THEN 'duplicate lead_id (its first row "
                f"is kept)' END) AS _reason, coalesce(_field, CASE WHEN {later} THEN 'lead_id' "
                f"END) AS _field, coalesce(_value, CASE WHEN {later} THEN lead_id END) AS _value)"
                f" FROM (SELECT row_number() OVER () AS _row, * FROM {quote(checked)}) AS n")
            checked += "_d"
    names = ", ".join(quote(col) for col, _, _ in canonical)
    con.sql(f"CREATE OR REPLACE TEMP VIEW {quote(name)} AS SELECT {names} "
                f"FROM {quote(checked)} WHERE _reason IS NULL")
    [(total, bad)] = con.sql(f"SELECT count(*), count(*) FILTER (WHERE _reason IS NOT NULL) "
                             f"FROM {quote(checked)}").fetchall()
    rejected = _rejected_rows(con, checked) if bad else REJECTED_SCHEMA.empty_table()
    if strict and bad:
        first = rejected.slice(0, 1).to_pylist()[0]
        raise EventError(first["reason"], source=label, row=first["row"], field=first["field"])
    if parsed is not None and len(parsed):
        parsed_table = pa.table({"row": pa.array(parsed.rows, pa.int64()),
                                 "field": pa.array(parsed.fields, pa.string()),
                                 "reason": pa.array(parsed.reasons, pa.string()),
                                 "value": pa.array(parsed.values, pa.string())})
        # Rows of a JSON file are numbered by line; the table rows by position: keep lines.
        if bad:
            rejected = rejected.drop_columns(["row"]).add_column(
                0, "row", pa.array([None] * rejected.num_rows, pa.int64()))
        rejected = pa.concat_tables([parsed_table, rejected])
    rejected_count = bad + (len(parsed) if parsed is not None else 0)
    return ReadReport(label, name, total - bad, rejected_count,
                      rejected.slice(0, MAX_REJECTED_KEPT),
                      {col: typ for col, _, typ in canonical}, others)


def _rejected_rows(con: duckdb.DuckDBPyConnection, checked: str) -> pa.Table:
    """The bad rows with their 1-based row numbers (a second pass, only when there are any)."""
    numbered = "_row" in con.sql(f"SELECT * FROM {quote(checked)} LIMIT 0").columns
    source = quote(checked) if numbered else (
        f"(SELECT row_number() OVER () AS _row, * FROM {quote(checked)})")
    rel = con.sql(f"SELECT CAST(_row AS BIGINT) AS row, _field AS field, _reason AS reason, "
                  f"_value AS value FROM {source} WHERE _reason IS NOT NULL "
                  f"ORDER BY _row LIMIT {MAX_REJECTED_KEPT}")
    return rel.to_arrow_table().cast(REJECTED_SCHEMA)


# ----------------------------------------------------------------------------- one lead

def events_of(con: duckdb.DuckDBPyConnection, lead_id: str, name: str = "events"
              ) -> list[Event]:
    """One lead's events from a canonical events table, oldest first."""
    rel = con.sql(f"SELECT * FROM {quote(name)} WHERE lead_id = ? ORDER BY ts",
                  params=[lead_id])
    names = rel.columns
    out = []
    for values in rel.fetchall():
        row = dict(zip(names, values, strict=True))
        properties, context = nested_columns(row)
        out.append(Event(row["lead_id"], int(row["ts"]), row["type"], row["event"],
                         row["path"], properties, context))
    return out


def lead_of(con: duckdb.DuckDBPyConnection, lead_id: str, name: str = "leads") -> Lead | None:
    """One lead's traits from a canonical leads table, or None if it has no row."""
    rel = con.sql(f"SELECT * FROM {quote(name)} WHERE lead_id = ? LIMIT 1", params=[lead_id])
    names = rel.columns
    rows = rel.fetchall()
    if not rows:
        return None
    return lead_from_row({**dict(zip(names, rows[0], strict=True)), "lead_id": lead_id})


# ----------------------------------------------------------------------------- messages

def is_message_stream(source: Any, con: duckdb.DuckDBPyConnection | None = None) -> bool:
    """Is `source` a Segment message stream: a JSON file (or glob of them), a table with the
    `messages` relation's columns, or the name of such a table in `con`?"""
    if isinstance(source, str | Path):
        text = str(source)
        if text.lower().endswith(segment.JSON_SUFFIXES):
            return True
        if con is not None and not Path(text).exists() and not any(m in text for m in "*?["):
            try:
                names = con.sql(f"SELECT * FROM {quote(text)} LIMIT 0").columns
            except duckdb.Error:
                return False
            return set(names) >= MESSAGE_MARKS
        return False
    if isinstance(source, pa.Table):
        return set(source.column_names) >= MESSAGE_MARKS
    return False


# Columns that tell a `messages` relation from an events table.
MESSAGE_MARKS = frozenset({"message_id", "user_id", "anonymous_id", "previous_id"})


def read_messages(sources: Any, con: duckdb.DuckDBPyConnection, *, name: str = "messages",
                  strict: bool = False) -> ReadReport:
    """Register the `messages` relation (`engine.sql.stream`) of one or more Segment JSON
    files (or a table of that relation, or its name in `con`) as the temporary table `name`:
    one row per message of any type, before dedupe. Bad messages are counted and kept in
    the report's rejected rows (by line number), never silently dropped."""
    items = sources if isinstance(sources, list | tuple) else [sources]
    tables: list[pa.Table] = []           # read by Python (Arrow)
    labels, parts = [], []                 # parts: tables DuckDB read
    rejected_parts: list[pa.Table] = []
    bad = 0
    for source in items:
        if isinstance(source, str | Path) and str(source).lower().endswith(
                segment.JSON_SUFFIXES):
            label, files = source_files(source)
            labels.append(label)
            for file in files:
                rejected, part = _json_messages(Path(file), con, name, strict, tables)
                if part is not None:
                    parts.append(part)
                bad += len(rejected)
                if len(rejected):
                    rejected_parts.append(pa.table({
                        "row": pa.array(rejected.rows, pa.int64()),
                        "field": pa.array(rejected.fields, pa.string()),
                        "reason": pa.array(rejected.reasons, pa.string()),
                        "value": pa.array(rejected.values, pa.string())}))
        elif isinstance(source, str | Path):
            labels.append(str(source))
            tables.append(con.sql(f"SELECT * FROM {quote(str(source))}").to_arrow_table())
        else:
            labels.append(f"<{type(source).__module__.split('.')[0]} "
                          f"{type(source).__name__}>")
            tables.append(as_arrow(source))
    table = None if not tables else tables[0] if len(tables) == 1 else pa.concat_tables(
        tables, promote_options="permissive")
    if table is not None:
        missing = [c for c in segment.MESSAGE_COLUMNS if c not in table.column_names]
        if missing:
            raise InputError(f"{', '.join(labels)}: not a messages table: no column "
                             f"{', '.join(repr(c) for c in missing)}")
    view = f"{name}__arrow_{next(_sequence)}"
    if table is not None:
        con.register(view, table)
    try:
        if len(parts) == 1 and table is None:     # one JSON-lines file: its table, no copy
            con.sql(f"DROP TABLE IF EXISTS {quote(name)}")
            con.sql(f"ALTER TABLE {quote(parts[0])} RENAME TO {quote(name)}")
        else:
            selects = [f"SELECT * FROM {quote(t)}" for t in
                       [*parts, *([view] if table is not None else [])]]
            con.sql(f"CREATE OR REPLACE TEMP TABLE {quote(name)} AS "
                    + " UNION ALL BY NAME ".join(selects))
    finally:
        if table is not None:
            con.unregister(view)
        for part in parts:
            con.sql(f"DROP TABLE IF EXISTS {quote(part)}")
    [(rows,)] = con.sql(f"SELECT count(*) FROM {quote(name)}").fetchall()
    rejected_rows = pa.concat_tables(rejected_parts) if rejected_parts \
        else REJECTED_SCHEMA.empty_table()
    return ReadReport(", ".join(labels), name, rows, bad,
                      rejected_rows.slice(0, MAX_REJECTED_KEPT), column_types_of(con, name))


def _json_messages(path: Path, con: duckdb.DuckDBPyConnection, name: str, strict: bool,
                   tables: list[pa.Table]) -> tuple[segment.Rejected, str | None]:
    """The messages of one JSON file: JSON lines read by DuckDB into a table (its name
    returned), anything else by Python (its Arrow table appended to `tables`)."""
    if path.suffix.lower() in segment_lines.LINES_SUFFIXES:
        part = f"{name}__lines_{next(_sequence)}"
        try:
            _, rejected = segment_lines.read_message_lines(path, con, part, strict=strict)
            return rejected, part
        except segment_lines.Unreadable:
            pass
    table, rejected = segment.message_table(path, strict=strict)
    tables.append(table)
    return rejected, None


def column_types_of(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, str]:
    """The columns of table `name` and their SQL types."""
    return {n: str(t) for n, t in column_types(con, name)}
