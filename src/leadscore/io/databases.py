"""Tables in databases: PostgreSQL (by URL) and DuckDB files — a table's columns, an Arrow
table loaded into one, and the scores written back with their types, replacing the table's
rows or upserting by `(lead_id, model)`: the sink a reverse-ETL tool reads into the CRM.

A target is `postgresql://user@host:port/database/schema.table` (the last path segment names
the table; the rest is the connection URL, its query string included) or a DuckDB file
`path.duckdb` (the table: `table`, default `scores`)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.csv as pacsv

from leadscore.errors import InputError
from leadscore.io.sqltext import quote

MODES = ("replace", "upsert")
KEY = ("lead_id", "model")
ACCOUNT_KEY = ("account_id", "model")
DUCKDB_SUFFIXES = (".duckdb", ".ddb")


def is_postgres_url(text: str) -> bool:
    return text.startswith(("postgresql://", "postgres://"))


def is_duckdb_file(text: str) -> bool:
    return Path(text).suffix.lower() in DUCKDB_SUFFIXES


@dataclass(frozen=True)
class Target:
    """Where scores go: a PostgreSQL connection URL or a DuckDB file, and a table."""

    kind: str           # "postgres" | "duckdb"
    location: str       # the connection URL / the file
    table: str          # `schema.table` or `table`

    @classmethod
    def parse(cls, text: str, table: str | None = None) -> Target:
        if is_postgres_url(text):
            parts = urlsplit(text)
            segments = [s for s in parts.path.split("/") if s]
            if len(segments) < 2:
                raise InputError(f"{text}: expected postgresql://…/DATABASE/SCHEMA.TABLE (the "
                                 "last part of the path names the table)")
            url = urlunsplit((parts.scheme, parts.netloc, "/" + "/".join(segments[:-1]),
                              parts.query, parts.fragment))
            return cls("postgres", url, table or segments[-1])
        if is_duckdb_file(text):
            return cls("duckdb", text, table or "scores")
        raise InputError(f"{text}: not a database target; expected postgresql://…/DB/"
                         f"SCHEMA.TABLE or a DuckDB file ({', '.join(DUCKDB_SUFFIXES)})")


def qualified(name: str) -> str:
    """`schema.table` (or `table`) as quoted SQL."""
    return ".".join(quote(part) for part in name.split("."))


# ------------------------------------------------------------------------- PostgreSQL

def connect_postgres(url: str) -> Any:
    """A psycopg connection (not in autocommit: the caller commits)."""
    import psycopg

    try:
        return psycopg.connect(url, connect_timeout=10)
    except psycopg.Error as exc:
        raise InputError(f"cannot connect to PostgreSQL: {str(exc).strip()}") from None


def postgres_columns(connection: Any, name: str) -> dict[str, str]:
    """The columns of table (or view) `name` (`schema.table`, or on the search path) and their
    types as PostgreSQL names them; a missing table is an InputError."""
    schema, _, table = name.rpartition(".")
    rows = connection.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum", (qualified(name) if schema else quote(table),)).fetchall()
    if not rows:
        raise InputError(f"{name}: no such table in the database (or it has no columns)")
    return {str(column): str(kind) for column, kind in rows}


_PG_TYPES = [
    (pa.types.is_boolean, "BOOLEAN"), (pa.types.is_integer, "BIGINT"),
    (pa.types.is_floating, "DOUBLE PRECISION"), (pa.types.is_timestamp, "TIMESTAMPTZ"),
    (pa.types.is_date, "DATE"), (pa.types.is_string, "TEXT"),
    (pa.types.is_large_string, "TEXT"), (pa.types.is_list, "JSONB"),
    (pa.types.is_struct, "JSONB"),
]


def postgres_type(kind: pa.DataType) -> str:
    for test, name in _PG_TYPES:
        if test(kind):
            return name
    return "TEXT"


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _csv_ready(table: pa.Table) -> pa.Table:
    """Nested columns as JSON text; timestamps as ISO text with their offset (COPY reads it)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_list(field.type) or pa.types.is_struct(field.type):
            text = pa.array([None if v is None else json.dumps(v, default=_json_value)
                             for v in table.column(i).to_pylist()], pa.string())
            table = table.set_column(i, pa.field(field.name, pa.string()), text)
    return table


def copy_rows(connection: Any, name: str, table: pa.Table) -> None:
    """COPY `table`'s rows into the existing table `name` (CSV: one pass, no per-row SQL)."""
    if not table.num_rows:
        return
    buffer = io.BytesIO()
    pacsv.write_csv(_csv_ready(table), buffer,
                    pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    columns = ", ".join(quote(c) for c in table.column_names)
    with connection.cursor() as cursor, cursor.copy(
            f"COPY {qualified(name)} ({columns}) FROM STDIN WITH (FORMAT csv)") as copy:
        copy.write(buffer.getvalue())


def create_postgres_table(connection: Any, name: str, schema: pa.Schema, *,
                          key: tuple[str, ...] = ()) -> None:
    """CREATE TABLE IF NOT EXISTS `name` with `schema`'s columns (and a primary key)."""
    columns = [f"{quote(f.name)} {postgres_type(f.type)}" for f in schema]
    if key:
        columns.append(f"PRIMARY KEY ({', '.join(quote(k) for k in key)})")
    connection.execute(f"CREATE TABLE IF NOT EXISTS {qualified(name)} ({', '.join(columns)})")


def load_postgres(url: str, name: str, table: pa.Table) -> None:
    """Replace table `name` with `table` (its columns, PostgreSQL types, its rows)."""
    with connect_postgres(url) as connection:
        connection.execute(f"DROP TABLE IF EXISTS {qualified(name)}")
        create_postgres_table(connection, name, table.schema)
        copy_rows(connection, name, table)


def upsert_sql(name: str, source: str, columns: list[str], key: tuple[str, ...] = KEY) -> str:
    """INSERT the rows of `source` (a table or a parenthesised query) into `name`, replacing
    the row of the same `key` (the scores': lead_id, model; the accounts': ACCOUNT_KEY)."""
    listed = ", ".join(quote(c) for c in columns)
    updates = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in columns if c not in key)
    return (f"INSERT INTO {qualified(name)} ({listed}) SELECT {listed} FROM {source} AS s "
            f"ON CONFLICT ({', '.join(quote(k) for k in key)}) DO UPDATE SET {updates}")


def write_postgres(table: pa.Table, url: str, name: str, mode: str) -> None:
    """Write the scores `table` to PostgreSQL table `name` in one transaction: `replace` (the
    table holds exactly these rows after) or `upsert` (by lead_id and model; the others stay).
    The table is created (primary key lead_id, model) if it does not exist."""
    _check_mode(mode)
    with connect_postgres(url) as connection:
        create_postgres_table(connection, name, table.schema, key=KEY)
        if mode == "replace":
            connection.execute(f"DELETE FROM {qualified(name)}")
            copy_rows(connection, name, table)
            return
        staging = "leadscore_scores_staging"
        connection.execute(f"CREATE TEMP TABLE {quote(staging)} (LIKE {qualified(name)}) "
                           "ON COMMIT DROP")
        copy_rows(connection, staging, table)
        connection.execute(upsert_sql(name, quote(staging), table.column_names))


def schema_tables(db: str, schema: str) -> dict[str, dict[str, str]]:
    """Every table of `schema` in the database `db` (a PostgreSQL URL or a DuckDB file) with
    its columns and their types."""
    query = ("SELECT table_name, column_name, data_type FROM information_schema.columns "
             "WHERE table_schema = ? ORDER BY table_name, ordinal_position")
    if is_postgres_url(db):
        with connect_postgres(db) as connection:
            rows = connection.execute(query.replace("?", "%s"), (schema,)).fetchall()
    else:
        import duckdb

        if not Path(db).exists():
            raise InputError(f"{db}: file not found")
        connection = duckdb.connect(db, read_only=True)
        try:
            rows = connection.execute(query, [schema]).fetchall()
        finally:
            connection.close()
    tables: dict[str, dict[str, str]] = {}
    for table, column, kind in rows:
        tables.setdefault(str(table), {})[str(column)] = str(kind)
    if not tables:
        raise InputError(f"{db}: schema {schema!r} holds no table")
    return tables


# ---------------------------------------------------------------------------- DuckDB file

def duckdb_columns(path: str, name: str) -> dict[str, str]:
    """The columns of table `name` in the DuckDB file `path` and their types."""
    import duckdb

    if not Path(path).exists():
        raise InputError(f"{path}: file not found")
    connection = duckdb.connect(path, read_only=True)
    try:
        relation = connection.sql(f"SELECT * FROM {qualified(name)} LIMIT 0")
        return {c: str(t) for c, t in zip(relation.columns, relation.types, strict=True)}
    except duckdb.Error as exc:
        raise InputError(f"{path}: table {name}: {str(exc).splitlines()[0]}") from None
    finally:
        connection.close()


def write_duckdb(table: pa.Table, path: str, name: str, mode: str) -> None:
    """As `write_postgres`, into table `name` of the DuckDB file `path` (created if missing)."""
    import duckdb

    _check_mode(mode)
    connection = duckdb.connect(path)
    try:
        connection.register("__scores", table)
        schema, _, _ = name.rpartition(".")
        connection.execute("BEGIN")
        if schema:
            connection.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
        connection.execute(f"CREATE TABLE IF NOT EXISTS {qualified(name)} AS SELECT * FROM "
                           "__scores LIMIT 0")
        if mode == "replace":
            connection.execute(f"DELETE FROM {qualified(name)}")
        else:
            keys = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in KEY)
            connection.execute(f"DELETE FROM {qualified(name)} AS t WHERE EXISTS (SELECT 1 "
                               f"FROM __scores AS s WHERE {keys})")
        connection.execute(f"INSERT INTO {qualified(name)} BY NAME SELECT * FROM __scores")
        connection.execute("COMMIT")
    finally:
        connection.close()


def write_scores(table: pa.Table, target: str, *, mode: str = "replace",
                 table_name: str | None = None) -> Target:
    """Write the scores to a database target (see the module doc); returns where they went."""
    where = Target.parse(target, table_name)
    if where.kind == "postgres":
        write_postgres(table, where.location, where.table, mode)
    else:
        write_duckdb(table, where.location, where.table, mode)
    return where


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise InputError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
