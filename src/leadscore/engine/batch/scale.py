"""`leadscore score` beyond one DuckDB query: on Spark (`--engine spark --master URL`), from a
saved state (`--state DIR` on DuckDB or Spark, reporting its progress across partitions), and
DuckDB's memory limit with spilling to disk (`--memory-limit`).

Progress and skipped rows are reported through plain callbacks; showing them is the caller's
business (the CLI draws bars with rich)."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from leadscore.errors import InputError
from leadscore.filters import Filters
from leadscore.model.schema import Model

if TYPE_CHECKING:
    from leadscore.engine.batch.state import RunReport

REMOTE_MARK = "://"

# `skipped(rows, source)`: bad rows of an input left out (on Spark).
Skipped = Callable[[int, str], None]
# `step(model, partition, done, total)`: a model's first call says "reading"; total None if
# not known yet.
PartitionStep = Callable[[str, str, int, int | None], None]
# `scored(model, report)`: a model is scored, and how (rebuilt or incremental, files read).
Scored = Callable[[str, "RunReport"], None]


def connect(memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """A scoring connection that spills to a temporary folder beyond `memory_limit`."""
    from leadscore.engine.batch import connect as batch_connect

    con = batch_connect(memory_limit)
    spill = Path(os.environ.get("LEADSCORE_SPILL_DIR", Path(tempfile.gettempdir())
                                / "leadscore-spill"))
    spill.mkdir(parents=True, exist_ok=True)
    con.sql(f"SET temp_directory = '{str(spill)!s}'")
    return con


def score_on_spark(models: list[Model], events: str, leads: str | None, out: str,
                   as_of_us: int, master: str, *, keep: bool = False,
                   skipped: Skipped | None = None, filters: Filters | None = None
                   ) -> tuple[int, pa.Table | None]:
    """Score on Spark and write `out`: a URL (`hdfs://`, `s3a://`, `file://`…) is written by
    Spark (a folder of part files); a plain path gets one file, as from DuckDB. Returns the
    number of scores and, with `keep`, the scores themselves (for the account plan, which
    would otherwise score every lead again). Bad rows left out are told to `skipped`."""
    from leadscore.engine.batch import spark as on_spark
    from leadscore.io.writers import write_table

    session = on_spark.session(master)
    session.sparkContext.setLogLevel("ERROR")
    with on_spark.settings(session):
        frame, bad_events, bad_leads = on_spark.score_frame(models, events, leads,
                                                            as_of_us=as_of_us, spark=session,
                                                            filters=filters)
        for bad, what in ((bad_events, events), (bad_leads, leads)):
            if bad and skipped is not None:
                skipped(bad, str(what))
        try:
            if REMOTE_MARK in out:
                frame = frame.cache()
                on_spark.write_frame(frame, out)
                return int(frame.count()), on_spark.to_arrow(frame) if keep else None
            table = on_spark.to_arrow(frame)
        finally:
            on_spark.release()
    write_table(table, out)
    return table.num_rows, table if keep else None


def score_with_state(models: list[Model], events: str, leads: str | None, as_of_us: int,
                     state: Path, con: Any, *,
                     step: PartitionStep | None = None, scored: Scored | None = None,
                     filters: Filters | None = None) -> pa.Table:
    """Every model scored from its state in `state` plus the files not read before, one model
    after the other (by name); `step` follows each across partitions when its state is
    (re)built, `scored` hears how each went. `con`: a DuckDB connection or a SparkSession.
    `filters` (default `Filters()`) leave events out as in `score_many`."""
    from leadscore.engine.batch.state import score_stream_with_state, score_with_state
    from leadscore.io.readers import is_message_stream

    one = score_stream_with_state if is_message_stream(events) else score_with_state
    if leads is not None and is_message_stream(leads):
        raise InputError(f"--state reads a message stream as --events; got one as --leads "
                         f"({leads}): give the messages as --events (and a leads table, if "
                         f"any, as --leads)")
    if REMOTE_MARK in events:
        raise InputError(f"--state reads local files (it lists them and keeps their sizes "
                         f"and times); got {events}")
    tables = []
    with _spark_settings(con):
        for model in sorted(models, key=lambda m: m.name):
            partition_step: Callable[[str, int, int], None] | None = None
            if step is not None:
                step(model.name, "reading", 0, None)
                partition_step = functools.partial(step, model.name)
            table, report = one(model, events, leads, as_of_us, state, con,
                                step=partition_step, filters=filters)
            if scored is not None:
                scored(model.name, report)
            tables.append(table)
    return pa.concat_tables(tables)


def accounts_with_state(models: list[Model], scores: pa.Table, leads: str | None,
                        as_of_us: int, state: Path, con: Any) -> pa.Table:
    """The accounts of the message stream kept in `state` (`score_with_state` over a stream
    just gave `scores` at `as_of_us`); `con`: a DuckDB connection or a SparkSession."""
    from leadscore.engine.batch.state import accounts_with_state as from_state

    with _spark_settings(con):
        return from_state(models, scores, leads, as_of_us, state, con)


def _spark_settings(con: Any) -> AbstractContextManager[None]:
    """The Spark settings the plan needs while `con` (a SparkSession) runs it."""
    if not hasattr(con, "sparkContext"):
        return nullcontext()
    from leadscore.engine.batch.spark import settings

    return settings(con)
