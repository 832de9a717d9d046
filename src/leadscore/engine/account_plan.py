"""Account scoring in the batch engine: the account plan and the lead links
(`engine.sql.account_plan`) run on DuckDB, their rows in ACCOUNT_SCHEMA / LINK_SCHEMA."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute

from leadscore.engine.sql.account_plan import compile_account_plan, links_query
from leadscore.model.accounts import CompiledAccount, compile_account
from leadscore.model.schema import Model

ACCOUNT_SCHEMA = pa.schema([
    ("account_id", pa.string()), ("model", pa.string()), ("fit", pa.float64()),
    ("engagement", pa.float64()), ("score", pa.float64()), ("disqualified", pa.bool_()),
    ("disqualify_reason", pa.string()), ("roles_engaged", pa.list_(pa.string())),
    ("roles_missing", pa.list_(pa.string())), ("mqa", pa.bool_()), ("leads", pa.int64()),
    ("engaged_leads", pa.int64()), ("leads_by_group", pa.int64()),
    ("leads_by_account_id", pa.int64()), ("leads_by_domain", pa.int64()),
    ("as_of", pa.timestamp("us", tz="UTC")),
])
LINK_SCHEMA = pa.schema([("lead_id", pa.string()), ("account_id", pa.string()),
                         ("account_match", pa.string())])

# ----------------------------------------------------------------------------- DuckDB

def read_accounts(source: Any, con: Any, name: str) -> dict[str, str]:
    """Stage an accounts table (`account_id` + one column per trait; a column may be named
    `account.<x>` or `traits.<x>` too) as `name` with columns `account_id, account.<x>`;
    return its columns and SQL types. Accepts a path (.csv, .parquet, .jsonl), an Arrow table,
    a pandas/polars frame, or the name of a table in `con`."""
    if isinstance(source, str | os.PathLike) and os.path.exists(source):
        path = str(source).replace("'", "''")
        reader = "read_parquet" if path.endswith(".parquet") else (
            "read_json_auto" if path.endswith((".jsonl", ".ndjson", ".json")) else
            "read_csv_auto")
        raw = con.sql(f"SELECT * FROM {reader}('{path}')")
    elif isinstance(source, str):
        raw = con.sql(f'SELECT * FROM "{source}"')
    else:
        table = source if isinstance(source, pa.Table) else pa.Table.from_pandas(source) \
            if hasattr(source, "to_dict") else pa.table(source)
        raw = con.from_arrow(table)
    if "account_id" not in raw.columns:
        from leadscore.errors import InputError

        raise InputError(f"accounts: no account_id column (columns: {', '.join(raw.columns)})")
    view = f"__accounts_src_{name}"
    con.register(view, raw.to_arrow_table())
    selects = ['CAST("account_id" AS VARCHAR) AS "account_id"']
    for column in raw.columns:
        if column == "account_id":
            continue
        trait = column.removeprefix("account.").removeprefix("traits.")
        selects.append(f'"{column}" AS "account.{trait}"')
    con.sql(f'CREATE OR REPLACE TEMP TABLE "{name}" AS SELECT {", ".join(selects)} FROM "{view}" '
            'WHERE "account_id" IS NOT NULL')
    con.unregister(view)
    rel = con.sql(f'SELECT * FROM "{name}" LIMIT 0')
    return {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}


def run_accounts(con: Any, model: Model, scores: pa.Table, leads_table: str | None,
                 lead_columns: Mapping[str, str], accounts_table: str | None,
                 account_columns: Mapping[str, str], as_of_us: int) -> pa.Table:
    """The accounts of one model (ACCOUNT_SCHEMA) on DuckDB."""
    account = compile_account(model)
    if account is None or (leads_table is None and accounts_table is None):
        return ACCOUNT_SCHEMA.empty_table()
    scores_name = f"__account_scores_{abs(hash((model.name, as_of_us)))}"
    con.register(scores_name, scores.select(["lead_id", "engagement", "disqualified"]))
    try:
        if leads_table is None:
            con.sql('CREATE OR REPLACE TEMP TABLE "__no_leads" AS SELECT CAST(NULL AS VARCHAR) '
                    'AS lead_id WHERE FALSE')
            leads_table, lead_columns = "__no_leads", {"lead_id": "VARCHAR"}
        plan = compile_account_plan(model, scores_name, leads_table, lead_columns,
                                    accounts_table, account_columns, as_of_us)
        result = con.sql(plan.sql(dialect="duckdb")).to_arrow_table()
    finally:
        con.unregister(scores_name)
    return account_table(account, result)


def account_table(account: CompiledAccount, result: pa.Table) -> pa.Table:
    """The account plan's rows (any engine) in ACCOUNT_SCHEMA: role flags as lists."""
    wanted = [role for role, _ in account.roles]
    flags = [result.column(f"r{i}").to_pylist() for i in range(len(wanted))]
    engaged = [[r for r, f in zip(wanted, row, strict=True) if f] for row in zip(*flags,
                                                                              strict=True)] \
        if wanted else [[] for _ in range(result.num_rows)]
    missing = [[r for r in wanted if r not in e] for e in engaged]
    columns = []
    for field in ACCOUNT_SCHEMA:
        if field.name == "roles_engaged":
            columns.append(pa.array(engaged, field.type))
        elif field.name == "roles_missing":
            columns.append(pa.array(missing, field.type))
        elif pa.types.is_timestamp(field.type):
            columns.append(result.column(field.name).cast(pa.int64()).cast(field.type))
        else:
            columns.append(result.column(field.name).cast(field.type))
    return pa.Table.from_arrays(columns, schema=ACCOUNT_SCHEMA)


def run_links(con: Any, leads_table: str, lead_columns: Mapping[str, str],
              accounts_table: str | None, account_columns: Mapping[str, str]) -> pa.Table:
    """`lead_id, account_id, account_match` of every lead with an account (DuckDB)."""
    query = links_query(leads_table, lead_columns, accounts_table, account_columns)
    return link_table(con.sql(query.sql(dialect="duckdb")).to_arrow_table())


def link_table(result: pa.Table) -> pa.Table:
    """The links query's rows (any engine) in LINK_SCHEMA."""
    return pa.Table.from_arrays([result.column(f.name).cast(f.type) for f in LINK_SCHEMA],
                                schema=LINK_SCHEMA)


def score_accounts(models: Model | list[Model], events: Any, leads: Any = None,
                   accounts: Any = None, *, as_of: Any = None, con: Any = None,
                   scores: pa.Table | None = None, engine: str = "duckdb",
                   spark: Any = None) -> pa.Table:
    """Every account under every model with an `account:` section, at `as_of` (default now).

    `accounts`: a table with `account_id` and trait columns (incl. `domain`). Accounts are
    those of the table and those a lead's `account_id` names. `scores`: the leads' scores of
    `score_many` at the same `as_of`, where already computed. One row per account and model
    (ACCOUNT_SCHEMA), sorted by model then account_id. `engine="spark"` runs the same plan
    on Spark (`engine.spark_accounts`; `spark`: a SparkSession).
    """
    from leadscore.engine import batch

    model_list = [models] if isinstance(models, Model) else list(models)
    as_of_us = batch._as_of_us(as_of)
    if engine == "spark":
        from leadscore.engine import spark as on_spark
        from leadscore.engine.spark_accounts import score_accounts as on_spark_accounts

        return on_spark_accounts(model_list, events, leads, accounts, as_of_us=as_of_us,
                                 spark=spark if spark is not None else on_spark.session(),
                                 scores=scores)
    own = con is None
    connection = batch.connect() if con is None else con
    try:
        events_name = batch._input(events, connection, "events")
        leads_name = batch._input(leads, connection, "leads") if leads is not None else None
        lead_columns = batch._table_columns(connection, leads_name) if leads_name else {}
        accounts_name, account_columns = None, {}
        if accounts is not None:
            accounts_name = f"__accounts_{abs(hash((id(accounts), as_of_us)))}"
            account_columns = read_accounts(accounts, connection, accounts_name)
        if scores is None:
            scores = batch.score_many(model_list, events_name, leads_name, as_of=as_of_us,
                                      con=connection)
        tables = []
        for model in sorted(model_list, key=lambda m: m.name):
            if compile_account(model) is None:
                continue
            mine = scores.filter(pa.compute.equal(scores.column("model"), model.name))
            tables.append(run_accounts(connection, model, mine, leads_name, lead_columns,
                                       accounts_name, account_columns, as_of_us))
        return pa.concat_tables(tables) if tables else ACCOUNT_SCHEMA.empty_table()
    finally:
        if own:
            connection.close()


def with_account_links(con: Any, scores: pa.Table, leads_table: str | None,
                       accounts: Any) -> pa.Table:
    """`scores` with each lead's `account_id` and `account_match` (account_id | domain)."""
    account_columns: dict[str, str] = {}
    accounts_name = f"__accounts_links_{abs(hash((id(accounts), id(scores))))}"
    account_columns = read_accounts(accounts, con, accounts_name)
    found: dict[str, tuple[str, str]] = {}
    if leads_table is not None:
        rel = con.sql(f'SELECT * FROM "{leads_table}" LIMIT 0')
        lead_columns = {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}
        links = run_links(con, leads_table, lead_columns, accounts_name, account_columns)
        found = {lead: (account, kind) for lead, account, kind in zip(
            *(links.column(c).to_pylist() for c in LINK_SCHEMA.names), strict=True)}
    return append_links(scores, found)


def append_links(scores: pa.Table, found: dict[str, tuple[str, str]]) -> pa.Table:
    """`scores` with `account_id` and `account_match` from lead_id → (account, kind)."""
    lead_ids = scores.column("lead_id").to_pylist()
    pairs = [found.get(lead_id, (None, None)) for lead_id in lead_ids]
    scores = scores.append_column(pa.field("account_id", pa.string()),
                                  pa.array([p[0] for p in pairs], pa.string()))
    return scores.append_column(pa.field("account_match", pa.string()),
                                pa.array([p[1] for p in pairs], pa.string()))
