"""Each lead's account on DuckDB: the links query (`engine.sql.account_plan.links_query`:
`account_id` trait, else e-mail domain) run and appended to the scores as `account_id` and
`account_match`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from leadscore.engine.batch.inputs import read_accounts, table_columns
from leadscore.engine.batch.schema import LINK_SCHEMA, append_links, link_table
from leadscore.engine.sql.account_plan import links_query


def run_links(con: Any, leads_table: str, lead_columns: Mapping[str, str],
              accounts_table: str | None, account_columns: Mapping[str, str]) -> pa.Table:
    """`lead_id, account_id, account_match` of every lead with an account (DuckDB)."""
    query = links_query(leads_table, lead_columns, accounts_table, account_columns)
    return link_table(con.sql(query.sql(dialect="duckdb")).to_arrow_table())


def with_account_links(con: Any, scores: pa.Table, leads_table: str | None,
                       accounts: Any) -> pa.Table:
    """`scores` with each lead's `account_id` and `account_match` (account_id | domain)."""
    accounts_name = f"__accounts_links_{abs(hash((id(accounts), id(scores))))}"
    account_columns = read_accounts(accounts, con, accounts_name)
    found: dict[str, tuple[str, str]] = {}
    if leads_table is not None:
        links = run_links(con, leads_table, table_columns(con, leads_table), accounts_name,
                          account_columns)
        found = {lead: (account, kind) for lead, account, kind in zip(
            *(links.column(c).to_pylist() for c in LINK_SCHEMA.names), strict=True)}
    return append_links(scores, found)
