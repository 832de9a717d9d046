"""`leadscore programs run|simulate`: nurture programs, run live or replayed on history."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pyarrow as pa
import typer

from leadscore.cli.console import clean_errors, say
from leadscore.cli.options import ConfigOption, DbOption
from leadscore.cli.outputs import output_path
from leadscore.events import Event, Lead, nested_columns
from leadscore.io.writers import write_table
from leadscore.model.loader import load_models
from leadscore.timeutil import iso, parse_timestamp

commands = typer.Typer(name="programs",
                       help="Nurture programs: run due steps, simulate on history.")


@commands.command()
@clean_errors
def run(config: ConfigOption = None, db: DbOption = None) -> None:
    """Run one round: segment memberships, enrolments, due steps and deliveries."""
    from leadscore.api.app import open_service
    from leadscore.config import load_settings
    from leadscore.programs.live import open_lifecycle

    settings = load_settings(config, overrides={"db": db})
    with open_service(settings) as service:
        life = open_lifecycle(service, settings)
        steps = life.run_once()
    say(f"{steps} steps executed")


@commands.command()
@clean_errors
def simulate(
    program: Annotated[Path, typer.Option(metavar="FILE", help="program YAML file")],
    model: Annotated[Path, typer.Option(metavar="FILE", help="its model")],
    events: Annotated[Path, typer.Option(metavar="FILE",
                                         help="events: Parquet, CSV or JSON lines")],
    start: Annotated[str, typer.Option("--from", metavar="TIME",
                                       help="first moment simulated")],
    end: Annotated[str, typer.Option("--to", metavar="TIME", help="last moment simulated")],
    out_path: Annotated[Path, typer.Option("--out", "-o", metavar="FILE",
                                           help="journey log: CSV/Parquet/JSON")],
    leads: Annotated[Path | None, typer.Option(metavar="FILE", help="leads table")] = None,
    content: Annotated[Path | None, typer.Option(metavar="FILE", help="content.yaml")] = None,
    segment: Annotated[list[Path] | None, typer.Option(metavar="FILE",
                                                       help="segments it reads")] = None,
    templates: Annotated[Path | None, typer.Option(metavar="DIR", help="templates folder")
                         ] = None,
) -> None:
    """Replay history through the program (nothing is sent); write the journey log and
    print the funnel."""
    from leadscore.io.writers import WRITE_SUFFIXES
    from leadscore.programs.content import load_content
    from leadscore.programs.definition import load_program
    from leadscore.programs.simulate import Replay, funnel
    from leadscore.segments import load_segments

    out_path = output_path(out_path, "--out", WRITE_SUFFIXES)
    loaded = load_program(program, templates=templates)
    found, people = _events_and_leads(events, leads, parse_timestamp(end))
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
    say(f"{loaded.name}: {summary['entered']} entered")
    if replay.not_for_model:
        say(f"  not entered ({loaded.model or 'its model'} does not apply): "
            f"{len(replay.not_for_model)}")
    for step, reached in summary["steps"].items():
        say(f"  {step:<16} {reached}")
    for reason, n in sorted(summary["exited"].items()):
        say(f"  exited ({reason}): {n}")
    say(f"  handed to sales: {summary['handed_to_sales']}")
    say(f"wrote {out_path} ({len(journal)} steps)")


def _events_and_leads(events: Path, leads: Path | None, end: int
                      ) -> tuple[list[Event], dict[str, Lead]]:
    """The events in time order and the leads by id, as the simulation reads them; a message
    stream is read as of `end` (its identity links and traits as known then)."""
    from leadscore.engine.batch import connect
    from leadscore.engine.batch.inputs import canonical_inputs

    con = connect()
    tables = canonical_inputs(str(events), str(leads) if leads is not None else None, con, end)
    rel = con.sql(f'SELECT * FROM "{tables.events}" ORDER BY ts')
    found = []
    for values in rel.fetchall():
        row = dict(zip(rel.columns, values, strict=True))
        properties, context = nested_columns(row)
        found.append(Event(row["lead_id"], int(row["ts"]), row["type"], row["event"],
                           row["path"], properties, context))
    people: dict[str, Lead] = {}
    if tables.leads is not None:
        rel = con.sql(f'SELECT * FROM "{tables.leads}"')
        for values in rel.fetchall():
            row = dict(zip(rel.columns, values, strict=True))
            traits = {k.removeprefix("traits."): v for k, v in row.items()
                      if v is not None and k != "lead_id" and not k.startswith("account.")}
            account = {k[len("account."):]: v for k, v in row.items()
                       if v is not None and k.startswith("account.")}
            people[str(row["lead_id"])] = Lead(str(row["lead_id"]), traits, account)
    con.close()
    return found, people
