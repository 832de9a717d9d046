"""Account scoring on DuckDB: each model's account plan (`engine.sql.account_plan`) over the
leads' scores, the leads table and the accounts table, its rows in ACCOUNT_SCHEMA."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute

from leadscore.engine.batch import duckdb as on_duckdb
from leadscore.engine.batch.inputs import as_of_us, canonical_inputs
from leadscore.engine.batch.schema import ACCOUNT_SCHEMA, account_table
from leadscore.engine.sql.account_plan import compile_account_plan
from leadscore.filters import Filters
from leadscore.model.accounts import compile_account
from leadscore.model.schema import Model


def run_accounts(con: Any, model: Model, scores: pa.Table, leads_table: str | None,
                 lead_columns: Mapping[str, str], accounts_table: str | None,
                 account_columns: Mapping[str, str], as_of: int) -> pa.Table:
    """The accounts of one model (ACCOUNT_SCHEMA) on DuckDB."""
    account = compile_account(model)
    if account is None or (leads_table is None and accounts_table is None):
        return ACCOUNT_SCHEMA.empty_table()
    scores_name = f"__account_scores_{abs(hash((model.name, as_of)))}"
    con.register(scores_name, scores.select(["lead_id", "engagement", "disqualified"]))
    try:
        if leads_table is None:
            con.sql('CREATE OR REPLACE TEMP TABLE "__no_leads" AS SELECT CAST(NULL AS VARCHAR) '
                    'AS lead_id WHERE FALSE')
            leads_table, lead_columns = "__no_leads", {"lead_id": "VARCHAR"}
        plan = compile_account_plan(model, scores_name, leads_table, lead_columns,
                                    accounts_table, account_columns, as_of)
        result = con.sql(plan.sql(dialect="duckdb")).to_arrow_table()
    finally:
        con.unregister(scores_name)
    return account_table(account, result)


def score_accounts(models: Model | list[Model], events: Any, leads: Any = None,
                   accounts: Any = None, *, as_of: Any = None, con: Any = None,
                   scores: pa.Table | None = None, engine: str = "duckdb",
                   spark: Any = None, filters: Filters | None = None) -> pa.Table:
    """Every account under every model with an `account:` section, at `as_of` (default now).

    `accounts`: a table with `account_id` and trait columns (incl. `domain`). Accounts are
    those of the table and those a lead's `account_id` names; from a message stream also
    those its group calls and identify `traits.company` objects name (with their traits).
    `scores`: the leads' scores of `score_many` at the same `as_of`, where already computed.
    One row per account and model (ACCOUNT_SCHEMA), sorted by model then account_id.
    `engine="spark"` runs the same plan on Spark (`engine.batch.spark.score_accounts`;
    `spark`: a SparkSession). `filters`: as `score_many`'s.
    """
    model_list = [models] if isinstance(models, Model) else list(models)
    when = as_of_us(as_of)
    if engine == "spark":
        from leadscore.engine.batch import spark as on_spark

        return on_spark.score_accounts(
            model_list, events, leads, accounts, as_of_us=when,
            spark=spark if spark is not None else on_spark.session(), scores=scores,
            filters=filters)
    own = con is None
    connection = on_duckdb.connect() if con is None else con
    try:
        found = canonical_inputs(events, leads, connection, when, accounts, filters)
        events_name, leads_name = found.events, found.leads
        lead_columns = found.leads_columns or {}
        accounts_name, account_columns = found.accounts, found.accounts_columns
        if scores is None:
            scores = on_duckdb.score_many(model_list, events_name, leads_name, as_of=when,
                                          con=connection, filters=filters)
        tables = []
        for model in sorted(model_list, key=lambda m: m.name):
            if compile_account(model) is None:
                continue
            mine = scores.filter(pa.compute.equal(scores.column("model"), model.name))
            tables.append(run_accounts(connection, model, mine, leads_name, lead_columns,
                                       accounts_name, account_columns, when))
        return pa.concat_tables(tables) if tables else ACCOUNT_SCHEMA.empty_table()
    finally:
        if own:
            connection.close()
