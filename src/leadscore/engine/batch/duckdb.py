"""The batch engine on DuckDB: every lead scored at once, each model's plan
(`engine.sql.plan`) run in one query; the inputs read by `leadscore.io` (`batch.inputs`)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from leadscore.engine.batch.inputs import as_of_us, canonical_inputs
from leadscore.engine.batch.schema import (
    SCORE_SCHEMA,
    output_schema,
    profiles,
    typed,
    with_profiles,
)
from leadscore.engine.sql.interest_plan import compile_interest_plan
from leadscore.engine.sql.plan import PlanOptions, compile_plan
from leadscore.errors import EngineError, InputError
from leadscore.filters import Filters, combined
from leadscore.io.sqltext import literal, quote
from leadscore.model.schema import Model

_sequence = itertools.count()


def connect(memory_limit: str | None = None, threads: int | None = None
            ) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection set up for scoring: a memory limit it spills beyond, UTC."""
    con = duckdb.connect()
    limit = memory_limit or os.environ.get("LEADSCORE_MEMORY_LIMIT", "3GB")
    con.sql(f"SET memory_limit = {literal(limit)}")
    con.sql("SET preserve_insertion_order = false")
    if threads:
        con.sql(f"SET threads = {int(threads)}")
    return con


def score_many(models: Model | Sequence[Model], events: Any, leads: Any = None, *,
               as_of: datetime | date | str | int | None = None, accounts: Any = None,
               con: duckdb.DuckDBPyConnection | None = None, engine: str = "duckdb",
               spark: Any = None, filters: Filters | None = None) -> pa.Table:
    """Score every lead under every model at `as_of` (default: now).

    `events` / `leads`: anything `leadscore.io.read_events` / `read_leads` accept, or the name
    of a canonical table already in `con`; rows they reject are skipped with a
    `RejectedRowsWarning` (those readers list every one, or fail on the first with
    `strict=True`). One row per lead and model, sorted by model then
    lead_id, with the columns of `OUTPUT_COLUMNS` and `interests`; with `accounts` (a table
    of `account_id` and traits incl. `domain`) also each lead's `account_id` and
    `account_match` (`engine.batch.accounts.score_accounts` scores the accounts).
    `engine="spark"` runs the same plan on Spark (`spark`: a SparkSession; events/leads may
    also be Spark DataFrames or any path Spark reads), see `leadscore.engine.batch.spark`.
    `filters`: the events they catch are left out, counted in a `FilteredEventsWarning`
    (default `Filters()`: the maintained bot and link-scanner lists; `leadscore.filters`).
    """
    model_list = [models] if isinstance(models, Model) else list(models)
    if any(m.filters is not None for m in model_list):
        return _by_filters(model_list, filters if filters is not None else Filters(),
                           lambda group, effective: score_many(
                               group, events, leads, as_of=as_of, accounts=accounts, con=con,
                               engine=engine, spark=spark, filters=effective))
    when = as_of_us(as_of)
    if engine == "spark":
        from leadscore.engine.batch import spark as on_spark

        session = spark if spark is not None else on_spark.session()
        scored = on_spark.score_many(model_list, events, leads, as_of_us=when, spark=session,
                                     filters=filters)
        if accounts is not None:   # each lead's account_id and account_match
            scored = on_spark.with_account_links(session, scored, leads, accounts, events,
                                                 when)
        return scored
    if engine != "duckdb":
        raise InputError(f"engine {engine!r}: unknown; expected 'duckdb' or 'spark'")
    own = con is None
    connection = connect() if con is None else con
    try:
        found = canonical_inputs(events, leads, connection, when, filters=filters)
        events_name, events_columns = found.events, found.events_columns
        leads_name, leads_columns = found.leads, found.leads_columns
        tables = []
        for model in sorted(model_list, key=lambda m: m.name):
            try:
                result = score_one(connection, model, events_name, events_columns, leads_name,
                                   leads_columns, when)
            except duckdb.Error as exc:
                raise EngineError(f"model {model.name!r}: the batch plan failed: {exc}") \
                    from None
            tables.append(with_interests(connection, model, events_name, events_columns,
                                         when, typed(result)))
        scored = pa.concat_tables(tables) if tables else output_schema(SCORE_SCHEMA).empty_table()
        if accounts is not None:   # each lead's account_id and account_match
            from leadscore.engine.batch.links import with_account_links

            scored = with_account_links(connection, scored, leads_name, accounts)
        return scored
    finally:
        if own:
            connection.close()


def score_rules(model: Model, events: Any, leads: Any = None, *,
                as_of: datetime | date | str | int | None = None,
                con: duckdb.DuckDBPyConnection | None = None,
                filters: Filters | None = None) -> pa.Table:
    """`score_many`'s columns for one model (no interests) plus each rule's contribution per
    lead, named by `engine.sql.plan.rule_column`, from the same single run of the plan: which
    leads every rule fired for, without scoring the model once per rule."""
    own = con is None
    connection = connect() if con is None else con
    try:
        when = as_of_us(as_of)
        found = canonical_inputs(events, leads, connection, when, filters=filters)
        try:
            result = score_one(connection, model, found.events, found.events_columns,
                               found.leads, found.leads_columns, when, rule_columns=True)
        except duckdb.Error as exc:
            raise EngineError(f"model {model.name!r}: the batch plan failed: {exc}") from None
        scores = typed(result)
        extra = [c for c in result.column_names if c not in SCORE_SCHEMA.names]
        for name in extra:
            scores = scores.append_column(name, result.column(name))
        return scores
    finally:
        if own:
            connection.close()


def score_one(con: duckdb.DuckDBPyConnection, model: Model, events_name: str,
              events_columns: dict[str, str], leads_name: str | None,
              leads_columns: dict[str, str] | None, as_of: int, *,
              rule_columns: bool = False) -> pa.Table:
    """One model's scores (the plan's columns, untyped), sorted by lead_id.

    The plan keys its bucket GROUP BY by a 64-bit hash of lead_id (integers group faster than
    strings); two leads with the same hash would share buckets, so the hash of every scored lead
    is checked to be unique and, in the (astronomically rare) case it is not, the plan runs
    again keyed by lead_id itself. The ORDER BY is done here: sorting the result in Arrow costs
    less than inside the plan."""
    for key in ("hash", "lead_id"):
        plan = compile_plan(model, events_columns, leads_columns, as_of,
                            options=PlanOptions(events_table=events_name, leads_table=leads_name,
                                                lead_key=key, order=False,
                                                rule_columns=rule_columns))
        # ev is staged as a temporary table (every rule reads it): DuckDB would otherwise
        # scan the input once per reference. Spark runs the plan as it is.
        result = stage_cte(con, plan, "ev")
        if "k" not in result.column_names:
            break
        keys = result.column("k").drop_null()
        if pc.count_distinct(keys).as_py() == len(keys):
            result = result.drop_columns(["k"])
            break
    return result.take(pc.sort_indices(result, [("lead_id", "ascending")]))


def stage_cte(con: duckdb.DuckDBPyConnection, plan: exp.Select, name: str) -> pa.Table:
    """Run a plan on DuckDB with its CTE `name` staged as a temporary table first."""
    plan = plan.copy()
    ctes = plan.args["with_"].expressions
    ev = next(cte for cte in ctes if cte.alias == name)
    staged = f"__{name}_{next(_sequence)}"
    con.sql(f"CREATE TEMP TABLE {quote(staged)} AS {ev.this.sql(dialect='duckdb')}")
    try:
        plan.args["with_"].set("expressions", [cte for cte in ctes if cte is not ev])
        for table in plan.find_all(exp.Table):
            if table.name == name:
                table.set("this", exp.to_identifier(staged, quoted=True))
        return con.sql(plan.sql(dialect="duckdb")).to_arrow_table()
    finally:
        con.sql(f"DROP TABLE IF EXISTS {quote(staged)}")


def with_interests(con: duckdb.DuckDBPyConnection, model: Model, events_table: str,
                   events_columns: Mapping[str, str], as_of: int, scores: pa.Table
                   ) -> pa.Table:
    """`scores` (one model's rows) with its `interests` column appended: the interest plan
    with its events scan `iv` staged (DuckDB would read the events once per interest rule)."""
    plan = compile_interest_plan(model, events_columns, as_of, events_table=events_table)
    found: dict[str, list[dict[str, Any]]] = {}
    if plan is not None and scores.num_rows:
        found = profiles(stage_cte(con, plan, "iv"))
    return with_profiles(scores, found)


def _by_filters(models: list[Model], settings: Filters,
                score: Callable[[list[Model], Filters], pa.Table]) -> pa.Table:
    """Models with filters of their own (`filters:`) scored over their own view of the
    events: grouped by their effective filters (the settings' with the model's added), one
    `score` per group, the rows sorted by model then lead as one run gives them."""
    groups: dict[Filters, list[Model]] = {}
    for model in models:
        own = model.filters
        effective = settings if own is None else combined(settings, own.own())
        # Scored over the events `effective` lets through: its own filters are in them.
        groups.setdefault(effective, []).append(model.model_copy(update={"filters": None}))
    tables = [score(group, effective) for effective, group in groups.items()]
    return pa.concat_tables(tables, promote_options="default").sort_by(
        [("model", "ascending"), ("lead_id", "ascending")])
