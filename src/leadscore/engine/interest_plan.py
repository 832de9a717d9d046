"""Interests in the batch engine: each model's interest plan (`engine.sql.interest_plan`) run
on DuckDB, then the `interests` column of the scores."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from leadscore.engine.sql.interest_plan import compile_interest_plan
from leadscore.model.schema import Model

INTEREST_TYPE = pa.list_(pa.struct([("topic", pa.string()), ("weight", pa.float64())]))


def profiles(long: pa.Table) -> dict[str, list[dict[str, Any]]]:
    """lead_id → [{topic, weight}, …] in rank order, from the plan's rows."""
    out: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for lead_id, topic, weight, rank in zip(*(long.column(c).to_pylist() for c in
                                             ("lead_id", "topic", "weight", "rank")),
                                            strict=True):
        out.setdefault(lead_id, []).append((rank, {"topic": topic, "weight": weight}))
    return {lead: [item for _, item in sorted(items, key=lambda i: i[0])]
            for lead, items in out.items()}


def with_interests(con: Any, model: Model, events_table: str,
                   events_columns: Mapping[str, str], as_of_us: int, scores: pa.Table
                   ) -> pa.Table:
    """`scores` (one model's rows) with its `interests` column appended (DuckDB)."""
    plan = compile_interest_plan(model, events_columns, as_of_us, events_table=events_table)
    found: dict[str, list[dict[str, Any]]] = {}
    if plan is not None and scores.num_rows:
        found = profiles(run_staged(con, plan, "iv"))
    return with_profiles(scores, found)


def with_profiles(scores: pa.Table, found: dict[str, list[dict[str, Any]]]) -> pa.Table:
    """`scores` with the `interests` column: each lead's profile in `found`, else empty."""
    # Each lead's position in `found` (the last entry, an empty profile, for the others),
    # taken in Arrow: a Python list over a million leads cost ~1 s even with nothing found.
    keys = list(found)
    profiles = pa.array([*(found[key] for key in keys), []], INTEREST_TYPE)
    position = pc.index_in(scores.column("lead_id"), value_set=pa.array(keys, pa.string()))
    column = profiles.take(pc.fill_null(position, len(keys)))
    return scores.append_column(pa.field("interests", INTEREST_TYPE), column)


def output_schema(score_schema: pa.Schema) -> pa.Schema:
    """The scores table's schema: the plan's columns, then `interests`."""
    return score_schema.append(pa.field("interests", INTEREST_TYPE))


def run_staged(con: Any, plan: exp.Select, cte: str) -> pa.Table:
    """Run a plan on DuckDB with its CTE `cte` staged as a temporary table: DuckDB would
    otherwise read the events once per reference (once per interest rule here)."""
    from leadscore.engine.batch import stage_cte

    return stage_cte(con, plan, cte)
