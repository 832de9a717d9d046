"""Segments on Spark: the segment plan of `segments.plan` (sqlglot expressions) rendered for
Spark SQL — no second implementation. Inputs are registered as for scoring
(`engine.batch.spark.inputs`: tables, or a Segment message stream through the stream stage),
once, and the scoring plan reads the same views."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import count
from typing import Any

import pyarrow as pa
from sqlglot import exp

from leadscore.engine.batch.spark import inputs as canonical_views
from leadscore.engine.batch.spark import rejected_kind, score_views, settings, warn_bad
from leadscore.errors import EngineError
from leadscore.model.schema import Model
from leadscore.segments.definition import Segment
from leadscore.segments.plan import MEMBERS_SCHEMA, Inputs, evaluate, members_table

_sequence = count()


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class _SparkStages:
    """The plan's intermediate tables as Spark temp views (dropped by `drop`), not cached:
    the final query reads them all as one Spark plan; caching each view took longer on the
    tests' small inputs (about 60 s against 35 s a case on local[2]), not measured at scale."""

    def __init__(self, spark: Any, inputs: Inputs, as_of_us: int):
        self.spark, self.inputs, self.as_of_us = spark, inputs, as_of_us
        self.tag = next(_sequence)
        self.views: list[str] = []

    def _view(self, kind: str, frame: Any) -> str:
        name = f"leadscore_seg_{kind}_{self.tag}_{len(self.views)}"
        frame.createOrReplaceTempView(name)
        self.views.append(name)
        return name

    def keep(self, kind: str, query: exp.Query) -> str:
        try:
            frame = self.spark.sql(query.sql(dialect="spark"))
        except Exception as exc:   # Spark's AnalysisException / ParseException
            raise EngineError(f"segments: the Spark plan failed: {_first_line(exc)}") from None
        return self._view(kind, frame)

    def score(self, model: Model) -> tuple[str, dict[str, str]]:
        frame = score_views([model], self.inputs.events, dict(self.inputs.events_columns),
                            self.inputs.leads, dict(self.inputs.leads_columns)
                            if self.inputs.leads is not None else None,
                            as_of_us=self.as_of_us, spark=self.spark)
        return self._view("scores", frame), dict(frame.dtypes)

    def drop(self) -> None:
        for name in self.views:
            self.spark.catalog.dropTempView(name)


def segment_many(segments: Sequence[Segment], models: Mapping[str, Model], events: Any,
                 leads: Any = None, *, as_of_us: int, spark: Any) -> pa.Table:
    """`segments.batch.segment_many` on Spark: the memberships collected to Arrow."""
    if not segments:
        return MEMBERS_SCHEMA.empty_table()
    with settings(spark):
        found = canonical_views(spark, events, leads, None, as_of_us)
        events_view, leads_view = found.events, found.leads
        warn_bad([(events, found.bad_events, rejected_kind(events, "events")),
                  (leads, found.bad_leads, rejected_kind(leads, "leads"))])
        inputs = Inputs(events_view, found.events_columns, leads_view,
                        found.leads_columns or {})
        stages = _SparkStages(spark, inputs, as_of_us)
        try:
            query = evaluate(stages, segments, models, inputs, as_of_us)
            assert query is not None
            try:
                result = spark.sql(query.sql(dialect="spark")).toArrow()
            except Exception as exc:
                raise EngineError(f"segments: the Spark plan failed: {_first_line(exc)}") \
                    from None
            return members_table(result)
        finally:
            stages.drop()
            for view in (events_view, leads_view):
                if view is not None:   # and the raw input `register` read it from
                    spark.catalog.dropTempView(view)
                    spark.catalog.dropTempView(f"{view}_raw")
