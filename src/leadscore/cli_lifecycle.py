"""`leadscore segments` and `leadscore programs run|simulate`; `cli.py` adds them with
`register(app, clean_errors)`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import typer
from rich.console import Console

from leadscore.events import Event, Lead, nested_columns
from leadscore.io.writers import write_table
from leadscore.model.loader import load_models
from leadscore.timeutil import iso, parse_timestamp

out = Console(soft_wrap=True, highlight=False)
Files = Annotated[list[Path], typer.Option(exists=False)]


def _events_and_leads(events: Path, leads: Path | None) -> tuple[list[Event], dict[str, Lead]]:
    from leadscore.engine.batch import connect
    from leadscore.io.readers import read_events, read_leads

    con = connect()
    read_events(str(events), con, name="ev")
    rel = con.sql("SELECT * FROM ev ORDER BY ts")
    found = []
    for values in rel.fetchall():
        row = dict(zip(rel.columns, values, strict=True))
        properties, context = nested_columns(row)
        found.append(Event(row["lead_id"], int(row["ts"]), row["type"], row["event"],
                           row["path"], properties, context))
    people: dict[str, Lead] = {}
    if leads is not None:
        read_leads(str(leads), con, name="ld")
        rel = con.sql("SELECT * FROM ld")
        for values in rel.fetchall():
            row = dict(zip(rel.columns, values, strict=True))
            traits = {k.removeprefix("traits."): v for k, v in row.items()
                      if v is not None and k != "lead_id" and not k.startswith("account.")}
            account = {k[len("account."):]: v for k, v in row.items()
                       if v is not None and k.startswith("account.")}
            people[str(row["lead_id"])] = Lead(str(row["lead_id"]), traits, account)
    con.close()
    return found, people


def register(app: typer.Typer, clean: Callable[[Any], Any]) -> None:
    @app.command("segments")
    @clean
    def segments(
        segment: Annotated[list[Path], typer.Option("--segment", help="segment YAML file(s)")],
        model: Annotated[list[Path], typer.Option("--model", help="model YAML file(s)")],
        # str, not Path: with Spark these may be URLs (s3a://…), which Path would mangle
        events: Annotated[str, typer.Option(help="events: Parquet, CSV or JSON lines (with "
                                            "Spark: Parquet or CSV, also a URL)")],
        out_path: Annotated[Path, typer.Option("--out", help="CSV, Parquet or JSON")],
        leads: Annotated[str | None, typer.Option(help="leads table")] = None,
        as_of: Annotated[str | None, typer.Option("--as-of", help="default: now")] = None,
        engine: Annotated[str, typer.Option("--engine", help="duckdb (in-process) or spark.")
                          ] = "duckdb",
        master: Annotated[str, typer.Option("--master", help="Spark master: local[*], "
                                            "spark://…, yarn, k8s://…")] = "local[*]",
    ) -> None:
        """Who is in each segment as of a moment: rows `lead_id, segment, entered_at`."""
        from leadscore.errors import InputError
        from leadscore.segments import load_segments
        from leadscore.segments.batch import segment_many

        if engine not in ("duckdb", "spark"):
            raise InputError(f"--engine {engine!r}: expected duckdb or spark")
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
            out.print(f"{name}: {size} leads")
        out.print(f"wrote {out_path}")

    programs = typer.Typer(help="Nurture programs: run due steps, simulate on history.")
    app.add_typer(programs, name="programs")

    @programs.command("run")
    @clean
    def run(config: Annotated[Path | None, typer.Option("--config", "-c")] = None,
            db: Annotated[str | None, typer.Option("--db")] = None) -> None:
        """Run one round: segment memberships, enrolments, due steps and deliveries."""
        from leadscore.api.app import open_service
        from leadscore.config import load_settings
        from leadscore.programs.live import open_lifecycle

        settings = load_settings(config, overrides={"db": db})
        with open_service(settings) as service:
            life = open_lifecycle(service, settings)
            steps = life.run_once()
        out.print(f"{steps} steps executed")

    @programs.command("simulate")
    @clean
    def simulate(
        program: Annotated[Path, typer.Option(help="program YAML file")],
        model: Annotated[Path, typer.Option(help="its model")],
        events: Annotated[Path, typer.Option(help="events: Parquet, CSV or JSON lines")],
        start: Annotated[str, typer.Option("--from", help="first moment simulated")],
        end: Annotated[str, typer.Option("--to", help="last moment simulated")],
        out_path: Annotated[Path, typer.Option("--out", help="journey log: CSV/Parquet/JSON")],
        leads: Annotated[Path | None, typer.Option(help="leads table")] = None,
        content: Annotated[Path | None, typer.Option(help="content.yaml")] = None,
        segment: Annotated[list[Path] | None, typer.Option(help="segments it reads")] = None,
        templates: Annotated[Path | None, typer.Option(help="templates folder")] = None,
    ) -> None:
        """Replay history through the program (nothing is sent); write the journey log and
        print the funnel."""
        from leadscore.programs.content import load_content
        from leadscore.programs.definition import load_program
        from leadscore.programs.simulate import Replay, funnel
        from leadscore.segments import load_segments

        loaded = load_program(program, templates=templates)
        found, people = _events_and_leads(events, leads)
        replay = Replay(loaded, load_models([model])[0], people,
                        load_content(content) if content else [],
                        load_segments(segment) if segment else [])
        journal = replay.run(found, parse_timestamp(start), parse_timestamp(end))
        write_table(pa.table({
            "lead_id": [a.lead_id for a in journal], "program": [a.program for a in journal],
            "step": [a.step for a in journal], "action": [a.action for a in journal],
            "at": [iso(a.at) for a in journal], "detail": [a.detail for a in journal]}),
            out_path)
        summary = funnel(loaded, journal)
        out.print(f"{loaded.name}: {summary['entered']} entered")
        for step, reached in summary["steps"].items():
            out.print(f"  {step:<16} {reached}")
        for reason, n in sorted(summary["exited"].items()):
            out.print(f"  exited ({reason}): {n}")
        out.print(f"  handed to sales: {summary['handed_to_sales']}")
        out.print(f"wrote {out_path} ({len(journal)} steps)")
