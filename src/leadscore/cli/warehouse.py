"""`leadscore compile` (the models as one SQL statement for a warehouse) and `leadscore dbt`
(a dbt package of them); `leadscore score --engine postgres` runs here too (`in_postgres`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from leadscore.cli.console import clean_errors, err, fail, out, say
from leadscore.cli.outputs import output_path
from leadscore.model.schema import Model

commands = typer.Typer()

DIALECT_HELP = "duckdb, postgres, spark, snowflake, bigquery or redshift."


def table_columns(db: str | None, name: str, models: list[Model], kind: str
                  ) -> dict[str, str]:
    """The columns of table `name`: read from the database `db` (a PostgreSQL URL or a DuckDB
    file), else the ones the models read (`declared_columns`)."""
    from leadscore.engine.sql.warehouse import declared_columns
    from leadscore.io.databases import (
        connect_postgres,
        duckdb_columns,
        is_postgres_url,
        postgres_columns,
    )

    if db is None:
        events, leads = declared_columns(models)
        return events if kind == "events" else leads
    if is_postgres_url(db):
        with connect_postgres(db) as connection:
            return postgres_columns(connection, name)
    return duckdb_columns(db, name)


def compiled(models: list[Model], events_table: str, leads_table: str | None,
             dialect: str, as_of: str | None, db: str | None, create: str | None) -> Any:
    from leadscore.cli.options import as_of_us
    from leadscore.engine.sql.warehouse import Source, compile_scores

    try:
        return compile_scores(
            models, Source(events_table, table_columns(db, events_table, models, "events")),
            Source(leads_table, table_columns(db, leads_table, models, "leads"))
            if leads_table else None,
            as_of_us=None if as_of is None else as_of_us(as_of), dialect=dialect,
            create=create)
    except ValueError as exc:
        fail(f"error: {exc}")


def account_columns(db: str | None, name: str | None, models: list[Model]
                    ) -> tuple[dict[str, str], dict[str, str] | None]:
    """For the account statement: the leads table's columns beyond `table_columns`' that
    the account plan reads (none where the database is asked: it has them all), and the
    accounts table's columns (None: no accounts table)."""
    from leadscore.engine.sql.warehouse import declared_account_columns

    leads_extra, declared = declared_account_columns(models)
    if name is None:
        return ({} if db else leads_extra), None
    if db is None:
        return leads_extra, declared
    return {}, table_columns(db, name, models, "accounts")


def account_compiled(models: list[Model], events_table: str | None, leads_table: str | None,
                     accounts_table: str | None, segment: str | None, dialect: str,
                     as_of: str | None, db: str | None, create: str | None) -> Any:
    """The account scores' statement over the tables (or the loader tables of `segment`)."""
    from leadscore.cli.options import as_of_us
    from leadscore.engine.sql.warehouse import Source
    from leadscore.engine.sql.warehouse_accounts import (
        compile_account_scores,
        compile_segment_account_scores,
    )

    when = None if as_of is None else as_of_us(as_of)
    try:
        if segment is not None:
            return compile_segment_account_scores(models, loader_schema(models, segment, db),
                                                  as_of_us=when, dialect=dialect,
                                                  create=create)
        assert events_table is not None
        leads_extra, accounts = account_columns(db, accounts_table, models)
        leads = None if leads_table is None else Source(leads_table, {
            **table_columns(db, leads_table, models, "leads"), **leads_extra})
        return compile_account_scores(
            models, Source(events_table, table_columns(db, events_table, models, "events")),
            leads, None if accounts_table is None or accounts is None
            else Source(accounts_table, accounts), as_of_us=when, dialect=dialect,
            create=create)
    except ValueError as exc:
        fail(f"error: {exc}")


def check_accounts_flags(layout: str, accounts_table: str | None, accounts_out: Any,
                         create_accounts: str | None) -> None:
    """`--accounts-table` and `--create-accounts` go with `--accounts-out`; with `--layout
    segment` the stream names the accounts (no accounts table)."""
    if accounts_out is None and (accounts_table or create_accounts):
        fail("error: --accounts-table and --create-accounts go with --accounts-out FILE (where "
             "the account scores' statement is written)")
    if layout == "segment" and accounts_table:
        fail("error: --layout segment scores the accounts the loader's groups and identifies "
             "name, with their traits: --accounts-table goes with --layout tables")


def loader_schema(models: list[Model], schema: str, db: str | None) -> Any:
    """The loader tables of `schema`: read from `db`, else the tables and columns the
    models need."""
    from leadscore.engine.sql.segment_tables import SegmentSchema, declared_schema
    from leadscore.engine.sql.warehouse import declared_columns
    from leadscore.io.databases import schema_tables

    if db is not None:
        return SegmentSchema(schema, schema_tables(db, schema))
    events, leads = declared_columns(models)
    return declared_schema(schema, models, leads, events)


def segment_compiled(models: list[Model], schema: str, dialect: str, as_of: str | None,
                     db: str | None, create: str | None) -> Any:
    """The statement over the loader tables of `schema` (read from `db`, else the tables
    and columns the models need)."""
    from leadscore.cli.options import as_of_us
    from leadscore.engine.sql.segment_tables import compile_segment_scores

    source = loader_schema(models, schema, db)
    try:
        return compile_segment_scores(models, source, as_of_us=None if as_of is None
                                      else as_of_us(as_of), dialect=dialect, create=create)
    except ValueError as exc:
        fail(f"error: {exc}")


def sources(layout: str, schema: str | None, events: str | None, leads: str | None,
            tables_flags: str) -> tuple[str | None, str | None]:
    """(the events table, the loader schema) the flags name: `--layout segment` needs
    `--schema` and no table flags (`tables_flags`, as this command spells them); `tables`
    needs the events table."""
    if layout not in ("tables", "segment"):
        fail(f"error: --layout {layout!r}: expected 'tables' or 'segment'")
    if layout == "segment":
        if schema is None or events or leads:
            fail("error: --layout segment reads the loader's tables of --schema SCHEMA "
                 f"(not {tables_flags})")
        return None, schema
    if schema is not None:
        fail("error: --schema goes with --layout segment")
    if events is None:
        fail(f"error: {tables_flags.split(' ')[0]} is required (or --layout segment "
             "--schema SCHEMA)")
    return events, None


@commands.command("compile")
@clean_errors
def compile_command(
    model: Annotated[list[Path], typer.Option("--model", "-m", metavar="FILE",
                                              help="A model file (repeat for several).")],
    dialect: Annotated[str, typer.Option("--dialect", "-d", metavar="DIALECT",
                                         help=f"The warehouse's SQL: {DIALECT_HELP}")],
    events_table: Annotated[str | None, typer.Option(
        "--events-table", metavar="SCHEMA.TABLE", help="The events table: lead_id, "
        "timestamp, type, event, path, a column per property (--layout tables).")] = None,
    leads_table: Annotated[str | None, typer.Option(
        "--leads-table", metavar="SCHEMA.TABLE", help="The leads table: lead_id, a column "
        "per trait (--layout tables).")] = None,
    schema: Annotated[str | None, typer.Option(
        "--schema", metavar="SCHEMA", help="With --layout segment: the schema the loader "
        "writes tracks, pages, identifies, groups, aliases and a table per event to.")
    ] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", metavar="TIME", help="Score as of "
                                              "this time (ISO 8601); default: the "
                                              "warehouse's current time when it runs.")] = None,
    out_path: Annotated[Path | None, typer.Option("--out", "-o", metavar="FILE", help="Write "
                                                  "the SQL here; default: standard output.")
                        ] = None,
    create: Annotated[str | None, typer.Option("--create", metavar="TABLE", help="Wrap it as "
                                               "CREATE TABLE TABLE AS ….")] = None,
    db: Annotated[str | None, typer.Option("--db", metavar="URL", help="Read the tables' "
                                           "columns from this database (postgresql://… or a "
                                           "DuckDB file); default: the columns the models "
                                           "read.")] = None,
    layout: Annotated[str, typer.Option("--layout", metavar="LAYOUT", help="tables (the "
                                        "layout of the Parquet/CSV input) or segment (the "
                                        "tables Segment's and RudderStack's loaders write, "
                                        "with the stream semantics).")] = "tables",
    accounts_table: Annotated[str | None, typer.Option(
        "--accounts-table", metavar="SCHEMA.TABLE", help="The accounts table: account_id, a "
        "column per trait (domain among them: leads link by their e-mail's domain); "
        "--layout tables. Without it the accounts are those the leads' account_id names.")
    ] = None,
    accounts_out: Annotated[Path | None, typer.Option(
        "--accounts-out", metavar="FILE", help="Also write the account scores' statement "
        "here (models with `account:`): one row per account and model, the leads' scores "
        "computed inline by the same plan.")] = None,
    create_accounts: Annotated[str | None, typer.Option(
        "--create-accounts", metavar="TABLE", help="Wrap the account statement as CREATE "
        "TABLE TABLE AS ….")] = None,
) -> None:
    """Compile the models to one SQL statement that scores every lead in the warehouse (and,
    with --accounts-out, a second one scoring every account)."""
    from leadscore.engine.sql.dialects import Dialect
    from leadscore.engine.sql.warehouse import render
    from leadscore.model import load_models

    try:
        speaking = Dialect.get_or_raise(dialect)
    except ValueError as exc:
        fail(f"error: --dialect: {exc}")
    events_table, segment = sources(layout, schema, events_table, leads_table,
                                    "--events-table / --leads-table")
    check_accounts_flags(layout, accounts_table, accounts_out, create_accounts)
    models = load_models(list(model))
    if segment is not None:
        statement = segment_compiled(models, segment, speaking.NAME, as_of, db, create)
    else:
        assert events_table is not None
        statement = compiled(models, events_table, leads_table, speaking.NAME, as_of, db,
                             create)
    accounts_sql = None
    if accounts_out is not None:
        accounts_sql = render(account_compiled(
            models, events_table, leads_table, accounts_table, segment, speaking.NAME, as_of,
            db, create_accounts), speaking)
        accounts_out = output_path(accounts_out, "--accounts-out")
    sql = render(statement, speaking)
    if out_path is None:
        out.file.write(sql)
    else:
        out_path = output_path(out_path, "--out")
        out_path.write_text(sql, encoding="utf-8")
        say(f"wrote the {speaking.NAME} SQL scoring {len(models)} model"
            f"{'s' * (len(models) != 1)} to {out_path}", "green")
    if accounts_out is not None and accounts_sql is not None:
        accounts_out.write_text(accounts_sql, encoding="utf-8")
        say(f"wrote the {speaking.NAME} SQL scoring their accounts to {accounts_out}",
            "green", console=out if out_path is not None else err)   # stdout: the SQL


@commands.command("dbt")
@clean_errors
def dbt_command(
    model: Annotated[list[Path], typer.Option("--model", "-m", metavar="FILE",
                                              help="A model file (repeat for several).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Write the dbt "
                                          "package here.")],
    dialect: Annotated[str, typer.Option("--dialect", "-d", metavar="DIALECT",
                                         help=f"The warehouse's SQL: {DIALECT_HELP}")
                       ] = "postgres",
    events_table: Annotated[str | None, typer.Option(
        "--events-table", metavar="SCHEMA.TABLE", help="The events table the source names "
        "(default analytics.events).")] = None,
    leads_table: Annotated[str | None, typer.Option(
        "--leads-table", metavar="SCHEMA.TABLE", help="The leads table the source names "
        "(default analytics.leads).")] = None,
    db: Annotated[str | None, typer.Option("--db", metavar="URL", help="Read the tables' "
                                           "columns from this database (postgresql://… or a "
                                           "DuckDB file); default: the columns the models "
                                           "read.")] = None,
    layout: Annotated[str, typer.Option("--layout", metavar="LAYOUT", help="tables (the "
                                        "events and leads tables) or segment (the tables "
                                        "Segment's and RudderStack's loaders write to "
                                        "--schema).")] = "tables",
    schema: Annotated[str | None, typer.Option(
        "--schema", metavar="SCHEMA", help="With --layout segment: the loader's schema.")
    ] = None,
    accounts_table: Annotated[str | None, typer.Option(
        "--accounts-table", metavar="SCHEMA.TABLE", help="The accounts table the source "
        "names, for the account scores of the models with `account:` (default: `accounts` "
        "in the events table's schema; --layout tables).")] = None,
) -> None:
    """Write a dbt package: a model per scoresheet (and one of its account scores where it
    has `account:`), the sources, the worked examples as data tests."""
    from leadscore.dbt import write_package
    from leadscore.model import load_models
    from leadscore.model.accounts import compile_account

    check_accounts_flags(layout, accounts_table, True, None)
    if layout == "tables":
        events_table = events_table or "analytics.events"
        leads_table = leads_table or "analytics.leads"
    events_table, segment = sources(layout, schema, events_table, leads_table,
                                    "--events-table / --leads-table")
    models = load_models(list(model))
    if segment is None and events_table is not None and any(compile_account(m)
                                                            for m in models):
        # Beside the events table: the package's one source is one schema.
        schema_name = events_table.rpartition(".")[0]
        accounts_table = accounts_table or ".".join(filter(None, (schema_name, "accounts")))
    try:
        if segment is not None:
            written = write_package(models, out_dir, dialect=dialect, events_table=None,
                                    leads_table=None, events_columns=None, leads_columns=None,
                                    segment=loader_schema(models, segment, db))
        else:
            assert events_table is not None
            columns = {kind: table_columns(db, name, models, kind) for kind, name in
                       (("events", events_table), ("leads", leads_table)) if name}
            leads_extra, accounts_columns = account_columns(db, accounts_table, models)
            if "leads" in columns and accounts_table is not None:
                columns["leads"] = {**columns["leads"], **leads_extra}
            written = write_package(models, out_dir, dialect=dialect,
                                    events_table=events_table, leads_table=leads_table,
                                    events_columns=columns["events"],
                                    leads_columns=columns.get("leads"),
                                    accounts_table=accounts_table,
                                    accounts_columns=accounts_columns)
    except ValueError as exc:
        fail(f"error: {exc}")
    say(f"wrote a dbt package of {len(models)} model{'s' * (len(models) != 1)} to "
        f"{out_dir} ({len(written)} files); run it with `dbt build`", "green")


def in_postgres(models: list[Model], db: str | None, events: str | None, leads: str | None,
                out_path: str, as_of: int, mode: str, segment: str | None = None) -> None:
    """`leadscore score --engine postgres`: the plan run inside the database (over the
    tables `events` / `leads`, or the loader tables of schema `segment`); the scores into
    its table `out_path`, or fetched into a file / another database."""
    from leadscore.engine.batch.postgres import score_into, score_postgres
    from leadscore.io.databases import is_duckdb_file, is_postgres_url, write_scores
    from leadscore.io.writers import WRITE_SUFFIXES, write_table

    if db is None or not db.startswith(("postgresql://", "postgres://")):
        fail("error: --engine postgres needs --db postgresql://… (the database holding the "
             "--events and --leads tables)")
    assert db is not None
    started = time.monotonic()
    if is_postgres_url(out_path) or is_duckdb_file(out_path):
        scores = score_postgres(models, db, events, leads, as_of=as_of, segment=segment)
        where = write_scores(scores, out_path, mode=mode)
        say(f"wrote {scores.num_rows:,} scores to {where.table} ({mode}) in "
            f"{time.monotonic() - started:.1f} s", "green")
        return
    if Path(out_path).suffix.lower() in WRITE_SUFFIXES:
        scores = score_postgres(models, db, events, leads, as_of=as_of, segment=segment)
        write_table(scores, out_path)
        say(f"wrote {scores.num_rows:,} scores to {out_path} in "
            f"{time.monotonic() - started:.1f} s", "green")
        return
    rows = score_into(models, db, events, leads, out_path, mode=mode, as_of=as_of,
                      segment=segment)
    say(f"wrote {rows:,} scores to table {out_path} in PostgreSQL ({mode}, no export) in "
        f"{time.monotonic() - started:.1f} s", "green")


def accounts_in_postgres(models: list[Model], db: str | None, events: str | None,
                         leads: str | None, accounts: str | None, out_path: str, as_of: int,
                         mode: str, segment: str | None = None) -> None:
    """`leadscore score --engine postgres --accounts`: the account statement run inside the
    database (over the accounts table `accounts`, or the stream's accounts of `segment`);
    into its table `out_path` (replaced or upserted by account_id and model), or fetched
    into a file."""
    from leadscore.engine.batch.postgres import score_accounts_into, score_accounts_postgres
    from leadscore.io.writers import WRITE_SUFFIXES, write_table

    assert db is not None
    started = time.monotonic()
    if Path(out_path).suffix.lower() in WRITE_SUFFIXES:
        rows = score_accounts_postgres(models, db, events, leads, accounts, as_of=as_of,
                                       segment=segment)
        write_table(rows, out_path)
        say(f"wrote {rows.num_rows:,} account scores to {out_path} in "
            f"{time.monotonic() - started:.1f} s", "green")
        return
    count = score_accounts_into(models, db, events, leads, accounts, out_path, mode=mode,
                                as_of=as_of, segment=segment)
    say(f"wrote {count:,} account scores to table {out_path} in PostgreSQL ({mode}, no "
        f"export) in {time.monotonic() - started:.1f} s", "green")
