"""The batch engine inside PostgreSQL: the plan compiled for PostgreSQL over the events and
leads tables already in the database (`engine.sql.warehouse`), or over the tables Segment's
and RudderStack's loaders write into a schema (`segment=`: `engine.sql.segment_tables`), and
run there — no export. The scores come back as the scores table (`score_postgres`) or stay
in the database (`score_into`: a table replaced or upserted by lead_id and model). The
account scores likewise (`engine.sql.warehouse_accounts`; with an accounts table, or the
stream's accounts): `score_accounts_postgres`, `score_accounts_into` (by account_id and
model; the roles as JSONB, as every list the scores write to PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from leadscore.engine.batch.inputs import as_of_us
from leadscore.engine.batch.schema import ACCOUNT_SCHEMA, SCORE_SCHEMA
from leadscore.engine.sql.segment_tables import SegmentSchema, compile_segment_scores
from leadscore.engine.sql.warehouse import Source, compile_scores, render
from leadscore.engine.sql.warehouse_accounts import (
    compile_account_scores,
    compile_segment_account_scores,
)
from leadscore.errors import EngineError, InputError
from leadscore.io.databases import (
    ACCOUNT_KEY,
    KEY,
    MODES,
    connect_postgres,
    postgres_columns,
    postgres_type,
    qualified,
    schema_tables,
    upsert_sql,
)
from leadscore.io.sqltext import quote
from leadscore.model.schema import Model

When = datetime | date | str | int | None


def compiled_sql(connection: Any, models: Sequence[Model], events: str, leads: str | None,
                 as_of: When, *, create: str | None = None) -> str:
    """The scoring statement for the tables `events` / `leads` of this database, their
    columns read from it."""
    try:
        statement = compile_scores(
            list(models), Source(events, postgres_columns(connection, events)),
            Source(leads, postgres_columns(connection, leads)) if leads else None,
            as_of_us=None if as_of is None else as_of_us(as_of), dialect="postgres",
            create=create)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return render(statement, "postgres", pretty=False)


def segment_sql(url: str, models: Sequence[Model], schema: str, as_of: When) -> str:
    """The scoring statement over the loader tables of `schema` in the database at `url`,
    their columns read from it."""
    source = SegmentSchema(schema, schema_tables(url, schema))
    try:
        statement = compile_segment_scores(
            list(models), source, as_of_us=None if as_of is None else as_of_us(as_of),
            dialect="postgres")
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return render(statement, "postgres", pretty=False)


def _sql(connection: Any, url: str, models: Sequence[Model], events: str | None,
         leads: str | None, segment: str | None, as_of: When) -> str:
    """The statement over the events / leads tables, or (`segment`) the loader schema."""
    if segment is not None:
        if events is not None or leads is not None:
            raise InputError("the loader tables of a schema (--layout segment --schema) or "
                             "an events and leads table (--events, --leads): not both")
        return segment_sql(url, models, segment, as_of)
    if events is None:
        raise InputError("no events table (or --layout segment --schema SCHEMA)")
    return compiled_sql(connection, models, events, leads, as_of)


def score_postgres(models: Model | Sequence[Model], url: str, events: str | None,
                   leads: str | None = None, *, as_of: When = None,
                   segment: str | None = None) -> pa.Table:
    """Score every lead of the tables `events` / `leads` (or, `segment`: of the loader tables
    of that schema, events None) in the PostgreSQL database at `url` under every model, in
    the database; the scores table (`SCORE_SCHEMA`; no interests)."""
    model_list = [models] if isinstance(models, Model) else list(models)
    with connect_postgres(url) as connection:
        sql = _sql(connection, url, model_list, events, leads, segment, as_of)
        rows = _run(connection, sql).fetchall()
    return _table(rows, SCORE_SCHEMA)


def score_into(models: Model | Sequence[Model], url: str, events: str | None,
               leads: str | None, out: str, *, mode: str = "replace", as_of: When = None,
               segment: str | None = None) -> int:
    """Score in the database into its table `out` (created with the scores' columns and the
    primary key (lead_id, model) if missing): `replace` its rows, or `upsert` by lead_id and
    model, in one transaction; `segment`: from the loader tables of that schema. Returns the
    number of rows written."""
    if mode not in MODES:
        raise InputError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    model_list = [models] if isinstance(models, Model) else list(models)
    with connect_postgres(url) as connection:
        sql = _sql(connection, url, model_list, events, leads, segment, as_of)
        return _into(connection, sql, out, SCORE_SCHEMA, KEY, mode)


def account_sql(connection: Any, url: str, models: Sequence[Model], events: str | None,
                leads: str | None, accounts: str | None, segment: str | None,
                as_of: When) -> str:
    """The account scores' statement over the events / leads / accounts tables of this
    database (their columns read from it), or (`segment`) the loader tables of that schema,
    whose stream names the accounts (no accounts table then)."""
    when = None if as_of is None else as_of_us(as_of)
    try:
        if segment is not None:
            if events is not None or leads is not None or accounts is not None:
                raise InputError("the loader tables of a schema (--layout segment --schema) "
                                 "name the accounts with their group calls: no events, leads "
                                 "or accounts table beside them")
            source = SegmentSchema(segment, schema_tables(url, segment))
            statement = compile_segment_account_scores(list(models), source, as_of_us=when,
                                                       dialect="postgres")
        else:
            if events is None:
                raise InputError("no events table (or --layout segment --schema SCHEMA)")
            statement = compile_account_scores(
                list(models), Source(events, postgres_columns(connection, events)),
                Source(leads, postgres_columns(connection, leads)) if leads else None,
                Source(accounts, postgres_columns(connection, accounts)) if accounts
                else None, as_of_us=when, dialect="postgres")
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return render(statement, "postgres", pretty=False)


def score_accounts_postgres(models: Model | Sequence[Model], url: str, events: str | None,
                            leads: str | None = None, accounts: str | None = None, *,
                            as_of: When = None, segment: str | None = None) -> pa.Table:
    """Every account under every model with an `account:` section, scored in the database
    at `url` from the tables `events` / `leads` / `accounts` (or `segment`'s loader tables):
    the account scores (`ACCOUNT_SCHEMA`), as `score_accounts` gives them."""
    model_list = [models] if isinstance(models, Model) else list(models)
    with connect_postgres(url) as connection:
        sql = account_sql(connection, url, model_list, events, leads, accounts, segment,
                          as_of)
        rows = _run(connection, sql).fetchall()
    return _table(rows, ACCOUNT_SCHEMA)


def score_accounts_into(models: Model | Sequence[Model], url: str, events: str | None,
                        leads: str | None, accounts: str | None, out: str, *,
                        mode: str = "replace", as_of: When = None,
                        segment: str | None = None) -> int:
    """As `score_into`, for the account scores: into the database's table `out` (primary
    key (account_id, model)), replaced or upserted. Returns the number of rows written."""
    if mode not in MODES:
        raise InputError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    model_list = [models] if isinstance(models, Model) else list(models)
    with connect_postgres(url) as connection:
        sql = account_sql(connection, url, model_list, events, leads, accounts, segment,
                          as_of)
        return _into(connection, sql, out, ACCOUNT_SCHEMA, ACCOUNT_KEY, mode)


def _table(rows: list[Any], schema: pa.Schema) -> pa.Table:
    columns: list[list[Any]] = [[row[i] for row in rows] for i in range(len(schema))]
    return pa.Table.from_arrays([pa.array(values, field.type)
                                 for values, field in zip(columns, schema, strict=True)],
                                schema=schema)


def _into(connection: Any, sql: str, out: str, schema: pa.Schema, key: tuple[str, ...],
          mode: str) -> int:
    """The statement's rows into table `out` (created with `schema`'s columns and primary
    key `key` if missing; lists as JSONB), replaced or upserted by `key`, in the
    connection's transaction; the number of rows."""
    staging = "leadscore_scores_new"
    names = [f.name for f in schema]
    # The statement's arrays of text as JSONB, as `io.databases` writes every list.
    picked = ", ".join(f"to_jsonb({quote(f.name)}) AS {quote(f.name)}"
                       if postgres_type(f.type) == "JSONB" else quote(f.name) for f in schema)
    _run(connection, f"CREATE TEMP TABLE {quote(staging)} ON COMMIT DROP AS SELECT {picked} "
                     f"FROM ({sql.rstrip().rstrip(';')}) AS s")
    columns = ", ".join(f"{quote(f.name)} {postgres_type(f.type)}" for f in schema)
    connection.execute(f"CREATE TABLE IF NOT EXISTS {qualified(out)} ({columns}, "
                       f"PRIMARY KEY ({', '.join(quote(k) for k in key)}))")
    if mode == "replace":
        connection.execute(f"DELETE FROM {qualified(out)}")
    connection.execute(upsert_sql(out, quote(staging), names, key))
    [(count,)] = connection.execute(f"SELECT count(*) FROM {quote(staging)}").fetchall()
    return int(count)


def _run(connection: Any, sql: str) -> Any:
    import psycopg

    try:
        return connection.execute(sql)
    except psycopg.Error as exc:
        raise EngineError(f"the plan failed in PostgreSQL: {str(exc).strip()}") from None
