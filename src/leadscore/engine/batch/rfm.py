"""Recency, frequency, monetary value and tenure of every customer, stand-alone
(`engine.sql.purchases.rfm_query` on DuckDB): the same numbers as the RFM columns of the
scores, joined to them by `lead_id, model`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from leadscore.engine.batch.duckdb import connect
from leadscore.engine.batch.inputs import as_of_us, canonical_inputs
from leadscore.engine.sql.purchases import rfm_query
from leadscore.model.schema import Model

RFM_SCHEMA = pa.schema([("lead_id", pa.string()), ("model", pa.string()),
                        ("recency_days", pa.float64()), ("frequency", pa.int64()),
                        ("monetary", pa.float64()), ("tenure_days", pa.float64())])


def rfm_many(models: Model | Sequence[Model], events: Any, *, as_of: Any = None,
             con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """Recency, frequency, monetary value and tenure of every customer under each model, as
    of `as_of`: `lead_id, model, recency_days, frequency, monetary, tenure_days` (join it to
    `score_many`'s output on lead_id and model)."""
    model_list = [models] if isinstance(models, Model) else list(models)
    when = as_of_us(as_of)
    own = con is None
    connection = connect() if con is None else con
    try:
        found = canonical_inputs(events, None, connection, when)
        name, columns = found.events, found.events_columns
        tables = [connection.sql(rfm_query(m, name, columns, when).sql(dialect="duckdb"))
                  .to_arrow_table().cast(RFM_SCHEMA)
                  for m in sorted(model_list, key=lambda m: m.name)]
        return pa.concat_tables(tables) if tables else RFM_SCHEMA.empty_table()
    finally:
        if own:
            connection.close()
