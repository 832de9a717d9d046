"""The batch engine: every lead scored at once, each model compiled to one SQL plan run by
DuckDB (`engine.sql.plan` builds the plan; `leadscore.io` reads the inputs)."""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from leadscore.engine.interest_plan import output_schema, with_interests
from leadscore.engine.sql.plan import PlanOptions, compile_plan
from leadscore.errors import EngineError, EventError, InputError, RejectedRowsWarning
from leadscore.io.readers import read_events, read_leads
from leadscore.model.schema import Model
from leadscore.scores import OUTPUT_COLUMNS
from leadscore.timeutil import now_us, parse_timestamp

_sequence = itertools.count()

SCORE_SCHEMA = pa.schema([
    ("lead_id", pa.string()), ("model", pa.string()), ("fit", pa.float64()),
    ("engagement", pa.float64()), ("score", pa.float64()), ("grade", pa.string()),
    ("temperature", pa.string()), ("stage", pa.string()), ("mql", pa.bool_()),
    ("disqualified", pa.bool_()), ("disqualify_reason", pa.string()),
    ("purchases", pa.int64()), ("customer_since", pa.timestamp("us", tz="UTC")),
    ("tenure_days", pa.float64()), ("recency_days", pa.float64()), ("frequency", pa.int64()),
    ("monetary", pa.float64()), ("as_of", pa.timestamp("us", tz="UTC")),
])
assert tuple(SCORE_SCHEMA.names) == OUTPUT_COLUMNS


def connect(memory_limit: str | None = None, threads: int | None = None
            ) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection set up for scoring: a memory limit it spills beyond, UTC."""
    con = duckdb.connect()
    limit = memory_limit or os.environ.get("LEADSCORE_MEMORY_LIMIT", "3GB")
    con.sql(f"SET memory_limit = '{limit}'")
    con.sql("SET preserve_insertion_order = false")
    if threads:
        con.sql(f"SET threads = {int(threads)}")
    return con


def _as_of_us(as_of: datetime | date | str | int | float | None) -> int:
    if as_of is None:
        return now_us()
    try:
        return parse_timestamp(as_of)
    except ValueError as exc:
        raise InputError(f"as_of: {exc}") from None


def _table_columns(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, str]:
    rel = con.sql(f'SELECT * FROM "{name}" LIMIT 0')
    return {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    try:
        con.sql(f'SELECT * FROM "{name}" LIMIT 0')
    except duckdb.Error:
        return False
    return True


def _input(source: Any, con: duckdb.DuckDBPyConnection, kind: str) -> str:
    """The name of a canonical table in `con` holding `source`."""
    if isinstance(source, str) and not os.path.exists(source) and _has_table(con, source) \
            and not any(mark in source for mark in "*?["):
        return source
    name = f"__{kind}_{next(_sequence)}"
    if kind == "events":
        report = read_events(source, con, name=name)
    else:
        report = read_leads(source, con, name=name)
    if report.rejected:    # scored without them, but never silently
        first = report.rejected_rows.slice(0, 1).to_pylist()
        # worded as the error `strict=True` raises for it: "row 2, field 'lead_id': …"
        example = "" if not first else " (the first: " + str(EventError(
            first[0]["reason"], row=first[0]["row"], field=first[0]["field"])) + ")"
        warn_rejected(report.source, report.rejected, kind, example, stacklevel=4)
    return name


def warn_rejected(source: str, count: int, kind: str, example: str = "", *,
                  stacklevel: int = 3) -> None:
    """A `RejectedRowsWarning`: `count` rows of `source` (kind "events" or "leads") skipped;
    `stacklevel` points it at the user's call."""
    warnings.warn(RejectedRowsWarning(
        f"{source}: {count:,} bad {kind.removesuffix('s')} row{'s' * (count != 1)} "
        f"skipped{example}"), stacklevel=stacklevel)


def score_many(models: Model | Sequence[Model], events: Any, leads: Any = None, *,
               as_of: datetime | date | str | int | None = None, accounts: Any = None,
               con: duckdb.DuckDBPyConnection | None = None, engine: str = "duckdb",
               spark: Any = None) -> pa.Table:
    """Score every lead under every model at `as_of` (default: now).

    `events` / `leads`: anything `leadscore.io.read_events` / `read_leads` accept, or the name
    of a canonical table already in `con`; rows they reject are skipped with a
    `RejectedRowsWarning` (those readers list every one, or fail on the first with
    `strict=True`). One row per lead and model, sorted by model then
    lead_id, with the columns of `OUTPUT_COLUMNS` and `interests`; with `accounts` (a table
    of `account_id` and traits incl. `domain`) also each lead's `account_id` and
    `account_match` (`engine.account_plan.score_accounts` scores the accounts).
    `engine="spark"` runs the same plan on Spark (`spark`: a SparkSession; events/leads may
    also be Spark DataFrames or any path Spark reads), see `leadscore.engine.spark`.
    """
    model_list = [models] if isinstance(models, Model) else list(models)
    as_of_us = _as_of_us(as_of)
    if engine == "spark":
        from leadscore.engine import spark as on_spark

        session = spark if spark is not None else on_spark.session()
        scored = on_spark.score_many(model_list, events, leads, as_of_us=as_of_us,
                                     spark=session)
        if accounts is not None:   # each lead's account_id and account_match
            from leadscore.engine.spark_accounts import with_account_links as links_on_spark

            scored = links_on_spark(session, scored, leads, accounts)
        return scored
    if engine != "duckdb":
        raise InputError(f"engine {engine!r}: unknown; expected 'duckdb' or 'spark'")
    own = con is None
    connection = connect() if con is None else con
    try:
        events_name = _input(events, connection, "events")
        leads_name = _input(leads, connection, "leads") if leads is not None else None
        events_columns = _table_columns(connection, events_name)
        leads_columns = _table_columns(connection, leads_name) if leads_name else None
        tables = []
        for model in sorted(model_list, key=lambda m: m.name):
            try:
                result = _score(connection, model, events_name, events_columns, leads_name,
                                leads_columns, as_of_us)
            except duckdb.Error as exc:
                raise EngineError(f"model {model.name!r}: the batch plan failed: {exc}") \
                    from None
            tables.append(with_interests(connection, model, events_name, events_columns,
                                         as_of_us, _typed(result)))
        scored = pa.concat_tables(tables) if tables else output_schema(SCORE_SCHEMA).empty_table()
        if accounts is not None:   # each lead's account_id and account_match
            from leadscore.engine.account_plan import with_account_links

            scored = with_account_links(connection, scored, leads_name, accounts)
        return scored
    finally:
        if own:
            connection.close()


def score_rules(model: Model, events: Any, leads: Any = None, *,
                as_of: datetime | date | str | int | None = None,
                con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """`score_many`'s columns for one model (no interests) plus each rule's contribution per
    lead, named by `engine.sql.plan.rule_column`, from the same single run of the plan: which leads
    every rule fired for, without scoring the model once per rule."""
    own = con is None
    connection = connect() if con is None else con
    try:
        events_name = _input(events, connection, "events")
        leads_name = _input(leads, connection, "leads") if leads is not None else None
        leads_columns = _table_columns(connection, leads_name) if leads_name else None
        try:
            result = _score(connection, model, events_name,
                            _table_columns(connection, events_name), leads_name,
                            leads_columns, _as_of_us(as_of), rule_columns=True)
        except duckdb.Error as exc:
            raise EngineError(f"model {model.name!r}: the batch plan failed: {exc}") from None
        typed = _typed(result)
        extra = [c for c in result.column_names if c not in SCORE_SCHEMA.names]
        for name in extra:
            typed = typed.append_column(name, result.column(name))
        return typed
    finally:
        if own:
            connection.close()


def _score(con: duckdb.DuckDBPyConnection, model: Model, events_name: str,
           events_columns: dict[str, str], leads_name: str | None,
           leads_columns: dict[str, str] | None, as_of_us: int, *,
           rule_columns: bool = False) -> pa.Table:
    """One model's scores, sorted by lead_id.

    The plan keys its bucket GROUP BY by a 64-bit hash of lead_id (integers group faster than
    strings); two leads with the same hash would share buckets, so the hash of every scored lead
    is checked to be unique and, in the (astronomically rare) case it is not, the plan runs
    again keyed by lead_id itself. The ORDER BY is done here: sorting the result in Arrow costs
    less than inside the plan."""
    for key in ("hash", "lead_id"):
        plan = compile_plan(model, events_columns, leads_columns, as_of_us,
                            options=PlanOptions(events_table=events_name, leads_table=leads_name,
                                                lead_key=key, order=False,
                                                rule_columns=rule_columns))
        result = _run(con, plan)
        if "k" not in result.column_names:
            break
        keys = result.column("k").drop_null()
        if pc.count_distinct(keys).as_py() == len(keys):
            result = result.drop_columns(["k"])
            break
    return result.take(pc.sort_indices(result, [("lead_id", "ascending")]))


def _run(con: duckdb.DuckDBPyConnection, plan: exp.Select) -> pa.Table:
    """Run a plan on DuckDB, staging its `ev` CTE (every rule reads it) as a temporary table:
    DuckDB would otherwise scan the input once per reference. Spark runs the plan as it is."""
    return stage_cte(con, plan, "ev")


def stage_cte(con: duckdb.DuckDBPyConnection, plan: exp.Select, name: str) -> pa.Table:
    """Run a plan on DuckDB with its CTE `name` staged as a temporary table first."""
    plan = plan.copy()
    ctes = plan.args["with_"].expressions
    ev = next(cte for cte in ctes if cte.alias == name)
    staged = f"__{name}_{next(_sequence)}"
    con.sql(f'CREATE TEMP TABLE "{staged}" AS {ev.this.sql(dialect="duckdb")}')
    try:
        plan.args["with_"].set("expressions", [cte for cte in ctes if cte is not ev])
        for table in plan.find_all(exp.Table):
            if table.name == name:
                table.set("this", exp.to_identifier(staged, quoted=True))
        return con.sql(plan.sql(dialect="duckdb")).to_arrow_table()
    finally:
        con.sql(f'DROP TABLE IF EXISTS "{staged}"')


def _typed(result: pa.Table) -> pa.Table:
    """The plan's µs integers as UTC timestamps; every column in the output schema's type."""
    columns = []
    for field in SCORE_SCHEMA:
        column = result.column(field.name)
        if pa.types.is_timestamp(field.type):
            column = column.cast(pa.int64()).cast(field.type)
        columns.append(column.cast(field.type))
    return pa.Table.from_arrays(columns, schema=SCORE_SCHEMA)
