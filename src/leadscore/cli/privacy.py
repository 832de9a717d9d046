"""The privacy commands: `leadscore forget`, `export-lead`, `retention`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from leadscore.cli.console import clean_errors, say
from leadscore.cli.service import ConfigOption, DbOption, ModelsOption, open_service, settings_of

commands = typer.Typer()
LeadArgument = Annotated[str, typer.Argument(metavar="ID", help="a lead id or userId")]


@commands.command()
@clean_errors
def forget(lead_id: LeadArgument, db: DbOption = None, models: ModelsOption = None,
           config: ConfigOption = None) -> None:
    """Erase a person: the lead, every lead merged into it, their events and every row about
    them, in one transaction; their e-mail addresses stay only as hashed suppressions."""
    service = open_service(settings_of(config, db=db, models_dir=models))
    try:
        erased = service.forget(lead_id)
    finally:
        service.close()
    rows = ", ".join(f"{name} {count}" for name, count in sorted(erased.rows.items()))
    say(f"forgot {erased.lead_id} ({len(erased.lead_ids)} lead(s)): {rows or 'no rows'}; "
        f"{erased.suppressed} address(es) suppressed")


@commands.command("export-lead")
@clean_errors
def export_lead(lead_id: LeadArgument,
                output: Annotated[Path | None, typer.Option(
                    "--out", "-o", metavar="FILE", help="write the JSON here (default: "
                                                           "stdout)")] = None,
                db: DbOption = None, models: ModelsOption = None,
                config: ConfigOption = None) -> None:
    """Print everything stored of a person as JSON."""
    service = open_service(settings_of(config, db=db, models_dir=models))
    try:
        text = json.dumps(service.export_lead(lead_id), indent=2, ensure_ascii=False,
                          default=str)
    finally:
        service.close()
    if output is None:
        say(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        say(f"wrote {output}")


@commands.command()
@clean_errors
def retention(days: Annotated[int | None, typer.Option(
                  metavar="DAYS", help="delete events older than this [default: "
                                       "event_retention_days]")] = None,
              db: DbOption = None, models: ModelsOption = None,
              config: ConfigOption = None) -> None:
    """Delete logged events older than `event_retention_days` now (the server also does it
    hourly); scores keep what those events earned."""
    settings = settings_of(config, db=db, models_dir=models)
    keep = settings.event_retention_days if days is None else days
    if keep <= 0:
        say("event_retention_days is 0: every event is kept")
        return
    service = open_service(settings)
    try:
        deleted = service.delete_old_events(keep)
    finally:
        service.close()
    say(f"deleted {deleted:,} event(s) older than {keep} day(s)")
