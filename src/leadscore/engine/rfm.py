"""Customer lifecycle (B2C): recency, frequency, monetary value and tenure of each customer.

A purchase is an event matching one of the model's `customer` lifecycle rules' `on` (as for
`purchases` in the scores output); its value is `properties.revenue` (else `properties.total`,
else `properties.value`; none: 0). For a customer at `as_of`:

- `recency_days`: days since the latest purchase; `frequency`: purchases; `monetary`: their
  total value; `tenure_days`: days since the first purchase.

Leads without a purchase have none of these (null). They are columns of the scores output of
both engines (the batch plan reads `purchase_value`); `rfm_many` is a stand-alone batch query
(joined to the scores by `lead_id, model`) and `engine.incremental.customers.customer_facts` the
Python form segments use.
All give the same numbers; `frequency` is `purchases` (null instead of 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import pyarrow as pa
from sqlglot import exp

from leadscore.engine.sqlconditions import or_
from leadscore.model.compiled import compile_model
from leadscore.model.purchases import VALUE_PATHS, purchase_matchers
from leadscore.model.schema import Model
from leadscore.timeutil import US_PER_DAY

RFM_COLUMNS = ("recency_days", "frequency", "monetary", "tenure_days")
RFM_SCHEMA = pa.schema([("lead_id", pa.string()), ("model", pa.string()),
                        ("recency_days", pa.float64()), ("frequency", pa.int64()),
                        ("monetary", pa.float64()), ("tenure_days", pa.float64())])


def purchase_value(columns: Mapping[str, str]) -> exp.Expr:
    """SQL for `value_of` over the canonical events columns (sqlglot, any dialect): the first
    of VALUE_PATHS that is a number, else 0 (text that is no number counts as none)."""
    values: list[exp.Expr] = [
        exp.TryCast(this=exp.column(p, quoted=True), to=exp.DataType.build("DOUBLE"))
        for p in VALUE_PATHS if p in columns and "BOOL" not in columns[p].upper()]
    zero = exp.cast(exp.Literal.number(0), exp.DataType.Type.DOUBLE)
    return exp.func("COALESCE", *values, zero) if values else zero


def purchase_sql(model: Model, columns: Mapping[str, str]) -> str:
    """DuckDB SQL of "this event is a purchase under `model`" over the canonical events."""
    from leadscore.engine.compiler import _matches

    matchers = purchase_matchers(compile_model(model))
    hit = or_(*(_matches(m, columns) for m in matchers)) if matchers else exp.false()
    return hit.sql(dialect="duckdb")


def rfm_sql(model: Model, events_table: str, columns: Mapping[str, str], as_of: int) -> str:
    """The batch query: one row per customer of `model` (DuckDB SQL)."""
    value = purchase_value(columns).sql(dialect="duckdb")
    name = model.name.replace("'", "''")
    return (f"SELECT lead_id, '{name}' AS model, "
            f"CAST({as_of} - MAX(ts) AS DOUBLE) / {US_PER_DAY} AS recency_days, "
            f"COUNT(*) AS frequency, CAST(SUM({value}) AS DOUBLE) AS monetary, "
            f"CAST({as_of} - MIN(ts) AS DOUBLE) / {US_PER_DAY} AS tenure_days "
            f'FROM "{events_table}" WHERE ts <= {as_of} AND ({purchase_sql(model, columns)}) '
            "GROUP BY lead_id")


def rfm_many(models: Model | Sequence[Model], events: Any, *, as_of: Any = None,
             con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """Recency, frequency, monetary value and tenure of every customer under each model, as
    of `as_of`: `lead_id, model, recency_days, frequency, monetary, tenure_days` (join it to
    `score_many`'s output on lead_id and model)."""
    from leadscore.engine.batch import _as_of_us, _input, _table_columns, connect

    model_list = [models] if isinstance(models, Model) else list(models)
    as_of_us = _as_of_us(as_of)
    own = con is None
    connection = connect() if con is None else con
    try:
        name = _input(events, connection, "events")
        columns = _table_columns(connection, name)
        tables = [connection.sql(rfm_sql(m, name, columns, as_of_us)).to_arrow_table()
                  .cast(RFM_SCHEMA) for m in sorted(model_list, key=lambda m: m.name)]
        return pa.concat_tables(tables) if tables else RFM_SCHEMA.empty_table()
    finally:
        if own:
            connection.close()
