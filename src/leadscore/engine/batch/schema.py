"""The tables the batch runners return, whatever engine ran the plan: the scores
(`SCORE_SCHEMA`, then `interests`), the accounts (`ACCOUNT_SCHEMA`) and the lead links
(`LINK_SCHEMA`), each built from a plan's rows."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from leadscore.model.accounts import CompiledAccount
from leadscore.scores import OUTPUT_COLUMNS

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

INTEREST_TYPE = pa.list_(pa.struct([("topic", pa.string()), ("weight", pa.float64())]))

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


def typed(result: pa.Table) -> pa.Table:
    """The plan's µs integers as UTC timestamps; every column in the output schema's type."""
    columns = []
    for field in SCORE_SCHEMA:
        column = result.column(field.name)
        if pa.types.is_timestamp(field.type):
            column = column.cast(pa.int64()).cast(field.type)
        columns.append(column.cast(field.type))
    return pa.Table.from_arrays(columns, schema=SCORE_SCHEMA)


def output_schema(score_schema: pa.Schema) -> pa.Schema:
    """The scores table's schema: the plan's columns, then `interests`."""
    return score_schema.append(pa.field("interests", INTEREST_TYPE))


def profiles(long: pa.Table) -> dict[str, list[dict[str, Any]]]:
    """lead_id → [{topic, weight}, …] in rank order, from the interest plan's rows."""
    out: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for lead_id, topic, weight, rank in zip(*(long.column(c).to_pylist() for c in
                                             ("lead_id", "topic", "weight", "rank")),
                                            strict=True):
        out.setdefault(lead_id, []).append((rank, {"topic": topic, "weight": weight}))
    return {lead: [item for _, item in sorted(items, key=lambda i: i[0])]
            for lead, items in out.items()}


def with_profiles(scores: pa.Table, found: dict[str, list[dict[str, Any]]]) -> pa.Table:
    """`scores` with the `interests` column: each lead's profile in `found`, else empty."""
    # Each lead's position in `found` (the last entry, an empty profile, for the others),
    # taken in Arrow: a Python list over a million leads cost ~1 s even with nothing found.
    keys = list(found)
    ranked = pa.array([*(found[key] for key in keys), []], INTEREST_TYPE)
    position = pc.index_in(scores.column("lead_id"), value_set=pa.array(keys, pa.string()))
    column = ranked.take(pc.fill_null(position, len(keys)))
    return scores.append_column(pa.field("interests", INTEREST_TYPE), column)


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


def link_table(result: pa.Table) -> pa.Table:
    """The links query's rows (any engine) in LINK_SCHEMA."""
    return pa.Table.from_arrays([result.column(f.name).cast(f.type) for f in LINK_SCHEMA],
                                schema=LINK_SCHEMA)


def append_links(scores: pa.Table, found: dict[str, tuple[str, str]]) -> pa.Table:
    """`scores` with `account_id` and `account_match` from lead_id → (account, kind)."""
    lead_ids = scores.column("lead_id").to_pylist()
    pairs = [found.get(lead_id, (None, None)) for lead_id in lead_ids]
    scores = scores.append_column(pa.field("account_id", pa.string()),
                                  pa.array([p[0] for p in pairs], pa.string()))
    return scores.append_column(pa.field("account_match", pa.string()),
                                pa.array([p[1] for p in pairs], pa.string()))
