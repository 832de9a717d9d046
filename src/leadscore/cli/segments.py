"""`leadscore segments`: who is in each segment as of a moment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from leadscore.cli.console import clean_errors, say
from leadscore.cli.outputs import output_path
from leadscore.io.writers import write_table
from leadscore.model.loader import load_models

commands = typer.Typer()


@commands.command()
@clean_errors
def segments(
    segment: Annotated[list[Path], typer.Option("--segment", metavar="FILE",
                                                help="segment YAML file(s)")],
    model: Annotated[list[Path], typer.Option("--model", metavar="FILE",
                                              help="model YAML file(s)")],
    # str, not Path: with Spark these may be URLs (s3a://…), which Path would mangle
    events: Annotated[str, typer.Option(metavar="FILE", help="events: Parquet, CSV or JSON "
                                        "lines (with Spark too; also a URL)")],
    out_path: Annotated[Path, typer.Option("--out", "-o", metavar="FILE",
                                           help="CSV, Parquet or JSON")],
    leads: Annotated[str | None, typer.Option(metavar="FILE", help="leads table")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", metavar="TIME", help="default: now")
                     ] = None,
    engine: Annotated[str, typer.Option("--engine", metavar="ENGINE", help="duckdb "
                                        "(in-process) or spark.")] = "duckdb",
    master: Annotated[str, typer.Option("--master", metavar="URL", help="Spark master: "
                                        "local[*], spark://…, yarn, k8s://…")] = "local[*]",
) -> None:
    """Who is in each segment as of a moment: rows `lead_id, segment, entered_at`."""
    from leadscore.errors import InputError
    from leadscore.io.writers import WRITE_SUFFIXES
    from leadscore.segments import load_segments
    from leadscore.segments.batch import segment_many

    if engine not in ("duckdb", "spark"):
        raise InputError(f"--engine {engine!r}: expected duckdb or spark")
    out_path = output_path(out_path, "--out", WRITE_SUFFIXES)
    loaded = load_segments(segment)
    on_spark: dict[str, Any] = {}
    if engine == "spark":
        from leadscore.engine.batch.spark import session

        on_spark = {"engine": "spark", "spark": session(master)}
        on_spark["spark"].sparkContext.setLogLevel("ERROR")
    table = segment_many(loaded, load_models(list(model)), events, leads, as_of=as_of,
                         **on_spark)
    write_table(table, out_path)
    counts = {s.name: 0 for s in loaded}
    for name in table.column("segment").to_pylist():
        counts[name] += 1
    for name, size in counts.items():
        say(f"{name}: {size} leads")
    say(f"wrote {out_path}")
