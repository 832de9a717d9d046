"""Accounts on Spark: the account plan and the lead links of `engine.account_plan` (sqlglot
expressions) rendered for Spark SQL — no second implementation. The accounts table is read as
on DuckDB (`account_plan.read_accounts`), then handed to Spark."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import count
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute

from leadscore.engine.account_plan import (
    ACCOUNT_SCHEMA,
    account_table,
    append_links,
    link_table,
    read_accounts,
)
from leadscore.engine.spark import _settings, _spark_type, register
from leadscore.engine.sql.account_plan import compile_account_plan, links_query
from leadscore.errors import EngineError
from leadscore.model.accounts import compile_account
from leadscore.model.schema import Model

_sequence = count()


def _frame(spark: Any, table: pa.Table, types: dict[str, str], name: str) -> str:
    """An Arrow table as a Spark temp view `name` (typed even when empty)."""
    frame = spark.createDataFrame(table) if table.num_rows else spark.createDataFrame(
        [], ", ".join(f"`{n}` {t}" for n, t in types.items()))
    frame.createOrReplaceTempView(name)
    return name


def register_accounts(spark: Any, source: Any) -> tuple[str, dict[str, str]]:
    """The accounts table as a Spark view of `account_id, account.<x>`, and its column types."""
    con = duckdb.connect()
    try:
        columns = read_accounts(source, con, "accounts")
        table = con.sql('SELECT * FROM "accounts"').to_arrow_table()
    finally:
        con.close()
    types = {n: _spark_type(t) for n, t in columns.items()}
    return _frame(spark, table, types, f"leadscore_accounts_{next(_sequence)}"), types


def _leads(spark: Any, leads: Any) -> tuple[str, dict[str, str]]:
    if leads is None:    # the plan joins a leads table: an empty one
        return _frame(spark, pa.table({"lead_id": pa.array([], pa.string())}),
                      {"lead_id": "STRING"}, f"leadscore_no_leads_{next(_sequence)}"), {
                          "lead_id": "STRING"}
    view, columns, _ = register(spark, leads, "leads")
    return view, columns


def _collect(spark: Any, sql: str, what: str) -> pa.Table:
    try:
        return spark.sql(sql).toArrow()
    except Exception as exc:   # Spark's AnalysisException / ParseException
        raise EngineError(f"{what}: the Spark plan failed: "
                          f"{str(exc).strip().splitlines()[0]}") from None


def with_account_links(spark: Any, scores: pa.Table, leads: Any, accounts: Any) -> pa.Table:
    """`scores` with each lead's `account_id` and `account_match`, the links found on Spark."""
    with _settings(spark):
        accounts_view, account_columns = register_accounts(spark, accounts)
        found: dict[str, tuple[str, str]] = {}
        if leads is not None:
            leads_view, lead_columns = _leads(spark, leads)
            query = links_query(leads_view, lead_columns, accounts_view, account_columns)
            links = link_table(_collect(spark, query.sql(dialect="spark"), "account links"))
            found = {lead: (account, kind) for lead, account, kind in zip(
                *(links.column(c).to_pylist() for c in links.column_names), strict=True)}
    return append_links(scores, found)


def score_accounts(models: Model | Sequence[Model], events: Any, leads: Any, accounts: Any, *,
                   as_of_us: int, spark: Any, scores: pa.Table | None = None) -> pa.Table:
    """`account_plan.score_accounts` on Spark: every account under every model with an
    `account:` section (ACCOUNT_SCHEMA), sorted by model then account_id."""
    from leadscore.engine.spark import score_many

    model_list = [models] if isinstance(models, Model) else list(models)
    wanted = sorted((m for m in model_list if compile_account(m) is not None),
                    key=lambda m: m.name)
    if not wanted or (leads is None and accounts is None):
        return ACCOUNT_SCHEMA.empty_table()
    if scores is None:
        scores = score_many(wanted, events, leads, as_of_us=as_of_us, spark=spark)
    tables = []
    with _settings(spark):
        accounts_view, account_columns = (None, {}) if accounts is None else \
            register_accounts(spark, accounts)
        leads_view, lead_columns = _leads(spark, leads)
        for model in wanted:
            mine = scores.filter(pa.compute.equal(scores.column("model"), model.name)) \
                .select(["lead_id", "engagement", "disqualified"])
            scores_view = _frame(spark, mine, {"lead_id": "STRING", "engagement": "DOUBLE",
                                               "disqualified": "BOOLEAN"},
                                 f"leadscore_account_scores_{next(_sequence)}")
            plan = compile_account_plan(model, scores_view, leads_view, lead_columns,
                                        accounts_view, account_columns, as_of_us)
            account = compile_account(model)
            assert account is not None
            tables.append(account_table(account, _collect(
                spark, plan.sql(dialect="spark"), f"model {model.name!r}: accounts")))
    return pa.concat_tables(tables)
