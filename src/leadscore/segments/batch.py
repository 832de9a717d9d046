"""Segments in batch: every lead's memberships as of a moment, on DuckDB (default) or Spark.

Both engines run the same plan (`segments.plan`, sqlglot expressions): for each model the
segments name, the batch engine scores every lead (`score_many`: scores, interests and the
customer's recency/frequency/monetary/tenure); one pass over the events counts, per lead, the
events of every `did` / `not_did` test (in its window); each segment is then one SELECT over
those, in dependency order (a segment's members are a table the segments reading it with
`in_segment` join).

`entered_at` of a member is the time of its latest event at or before `as_of` (the last change
the batch can see to what its conditions read), or `as_of` for a lead without events. The live
service records the moment it saw the lead enter, which is that same time when an event made it
a member.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa
from sqlglot import exp

from leadscore.engine.batch import connect, score_many
from leadscore.engine.batch.inputs import as_of_us as as_of_micros
from leadscore.engine.batch.inputs import canonical_inputs, table_columns
from leadscore.errors import EngineError, InputError
from leadscore.model.schema import Model
from leadscore.segments.definition import Segment
from leadscore.segments.plan import (
    MEMBERS_SCHEMA,
    Inputs,
    check_models,
    evaluate,
    members_table,
)

__all__ = ["MEMBERS_SCHEMA", "segment_many"]
_sequence = itertools.count()


class _DuckDBStages:
    """The plan's intermediate tables as DuckDB temp tables (dropped by `drop`)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, inputs: Inputs, as_of_us: int):
        self.con, self.inputs, self.as_of_us = con, inputs, as_of_us
        self.tag = next(_sequence)
        self.created: list[str] = []

    def keep(self, kind: str, query: exp.Query) -> str:
        name = f"__seg_{kind}_{self.tag}_{len(self.created)}"
        self.created.append(name)
        try:
            self.con.sql(f'CREATE TEMP TABLE "{name}" AS {query.sql(dialect="duckdb")}')
        except duckdb.Error as exc:
            raise EngineError(f"segments: the batch plan failed: {exc}") from None
        return name

    def score(self, model: Model) -> tuple[str, dict[str, str]]:
        result = score_many(model, self.inputs.events, self.inputs.leads, as_of=self.as_of_us,
                            con=self.con)
        arrow = f"__seg_arrow_{self.tag}_{len(self.created)}"
        self.con.register(arrow, result)
        try:
            name = self.keep("scores", exp.select(exp.Star()).from_(exp.to_identifier(
                arrow, quoted=True)))
        finally:
            self.con.unregister(arrow)
        return name, table_columns(self.con, name)

    def drop(self) -> None:
        for name in self.created:
            self.con.sql(f'DROP TABLE IF EXISTS "{name}"')


def segment_many(segments: Sequence[Segment], models: Sequence[Model], events: Any,
                 leads: Any = None, *, as_of: Any = None,
                 con: duckdb.DuckDBPyConnection | None = None, engine: str = "duckdb",
                 spark: Any = None) -> pa.Table:
    """One row per lead and segment it belongs to at `as_of`: `lead_id, segment, entered_at`
    (segments in dependency order — see `load_segments` — then lead_id).

    `engine="spark"` runs the same plan on Spark (`spark`: a SparkSession, default a local
    one; events/leads may also be Spark DataFrames or paths Spark reads), see
    `segments.spark`."""
    by_model = check_models(segments, models)
    as_of_us = as_of_micros(as_of)
    if engine == "spark":
        from leadscore.engine.batch.spark import session
        from leadscore.segments.spark import segment_many as on_spark

        return on_spark(segments, by_model, events, leads, as_of_us=as_of_us,
                        spark=spark if spark is not None else session())
    if engine != "duckdb":
        raise InputError(f"engine {engine!r}: unknown; expected 'duckdb' or 'spark'")
    own = con is None
    connection = connect() if con is None else con
    stages: _DuckDBStages | None = None
    try:
        found = canonical_inputs(events, leads, connection, as_of_us)
        inputs = Inputs(found.events, found.events_columns, found.leads,
                        found.leads_columns or {})
        stages = _DuckDBStages(connection, inputs, as_of_us)
        query = evaluate(stages, segments, by_model, inputs, as_of_us)
        if query is None:
            return MEMBERS_SCHEMA.empty_table()
        return members_table(connection.sql(query.sql(dialect="duckdb")).to_arrow_table())
    finally:
        if stages is not None:
            stages.drop()
        if own:
            connection.close()
