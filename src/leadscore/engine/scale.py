"""`leadscore score` beyond one DuckDB query: on Spark (`--engine spark --master URL`), from a
saved state (`--state DIR`, with a progress bar across partitions), and DuckDB's memory limit
with spilling to disk (`--memory-limit`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from leadscore.errors import InputError
from leadscore.model.schema import Model

REMOTE_MARK = "://"


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
                   as_of_us: int, master: str, console: Console, *, keep: bool = False
                   ) -> tuple[int, pa.Table | None]:
    """Score on Spark and write `out`: a URL (`hdfs://`, `s3a://`, `file://`…) is written by
    Spark (a folder of part files); a plain path gets one file, as from DuckDB. Returns the
    number of scores and, with `keep`, the scores themselves (for the account plan, which
    would otherwise score every lead again)."""
    from leadscore.engine.batch import spark as on_spark
    from leadscore.io.writers import write_table

    session = on_spark.session(master)
    session.sparkContext.setLogLevel("ERROR")
    with on_spark.settings(session):
        frame, bad_events, bad_leads = on_spark.score_frame(models, events, leads,
                                                            as_of_us=as_of_us, spark=session)
        for bad, what in ((bad_events, events), (bad_leads, leads)):
            if bad:
                console.print(f"skipped {bad:,} bad row{'s' * (bad != 1)} of {what}",
                              style="yellow")
        if REMOTE_MARK in out:
            frame = frame.cache()
            on_spark.write_frame(frame, out)
            return int(frame.count()), on_spark.to_arrow(frame) if keep else None
        table = on_spark.to_arrow(frame)
    write_table(table, out)
    return table.num_rows, table if keep else None


def score_with_state(models: list[Model], events: str, leads: str | None, as_of_us: int,
                     state: Path, con: duckdb.DuckDBPyConnection, console: Console
                     ) -> pa.Table:
    """Every model scored from its state in `state` plus the files not read before, with a
    progress bar across partitions when the state is (re)built."""
    from leadscore.engine.batch.state import score_with_state as one

    if REMOTE_MARK in events:
        raise InputError(f"--state reads local files (DuckDB); got {events}")
    tables = []
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=True,
                        disable=not console.is_terminal)
    with progress:
        for model in sorted(models, key=lambda m: m.name):
            task = progress.add_task(f"{model.name}: reading", total=None)

            def step(partition: str, done: int, total: int, task: Any = task,
                     name: str = model.name) -> None:
                progress.update(task, description=f"{name}: {partition}", completed=done,
                                total=total)

            table, report = one(model, events, leads, as_of_us, state, con, step=step)
            console.print(f"{model.name}: {report.mode} ({report.reason or 'new files only'}); "
                          f"{report.files_read:,} file{'s' * (report.files_read != 1)} read",
                          style="dim")
            tables.append(table)
    return pa.concat_tables(tables)
