"""Sales commands: `leadscore feedback export` (sales' verdicts as an outcomes file for
`evaluate --outcomes` and `learn --outcomes`) and `leadscore routing check`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from leadscore.cli.console import clean_errors, say
from leadscore.cli.service import ConfigOption, DbOption
from leadscore.config import load_settings

commands = typer.Typer()
feedback = typer.Typer(name="feedback", help="Sales' verdicts on handed-off leads.",
                       no_args_is_help=True)
routing = typer.Typer(name="routing", help="The routing file: owners, teams and SLAs.",
                      no_args_is_help=True)
adjustments = typer.Typer(name="adjustments", help="Manual adjustments of points.",
                          no_args_is_help=True)
commands.add_typer(feedback)
commands.add_typer(routing)
commands.add_typer(adjustments)


@feedback.command("export")
@clean_errors
def export(
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", metavar="FILE", help="CSV file to write (default: standard output)")
    ] = None,
    outcome: Annotated[str, typer.Option(
        metavar="OUTCOME", help="what `converted` means: won (a closed deal) or accepted "
                                "(sales accepted the lead)")] = "won",
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Write lead_id, status, reason, at, owner, by, converted, converted_at of every
    verdict: the outcomes `evaluate --outcomes` and `learn --outcomes` read."""
    from leadscore.sales.export import OUTCOMES, feedback_csv, feedback_rows
    from leadscore.store import Database, migrate

    if outcome not in OUTCOMES:
        raise typer.BadParameter(f"expected one of {', '.join(OUTCOMES)}",
                                 param_hint="--outcome")
    settings = load_settings(config, overrides={"db": db})
    database = Database(settings.db)
    try:
        migrate(database)
        rows = feedback_rows(database, outcome)
    finally:
        database.close()
    text = "".join(feedback_csv(rows))
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        say(f"wrote {len(rows):,} verdicts to {out}")


@routing.command("check")
@clean_errors
def check(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="a routing.yaml")],
) -> None:
    """Validate a routing file: every problem with its line and key."""
    from leadscore.sales.routing import parse_routing

    found = parse_routing(file.read_text(encoding="utf-8"), str(file))
    say(f"{file}: {len(found.teams)} team(s), {len(found.rules)} rule(s), "
        f"{len(found.reasons)} reason code(s): ok")


@adjustments.command("events")
@clean_errors
def adjustment_events(
    table: Annotated[Path, typer.Argument(metavar="FILE", help="adjustments: CSV or JSON lines "
                                          "with lead_id, points, reason, at [, expires_at, "
                                          "model, by, id]")],
    model: Annotated[list[Path], typer.Option("--model", "-m", metavar="FILE", help="the "
                                              "models (their half-lives time the expiry)")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="FILE",
                                      help="Segment JSON lines to write")],
    events: Annotated[Path | None, typer.Option(
        "--events", "-e", metavar="FILE", help="Segment JSON lines to copy first, so --out "
                                               "is the events file a batch run reads")] = None,
) -> None:
    """Turn an adjustments table into the events a batch run scores, as the service writes
    them: `leadscore score --events OUT` then counts them."""
    import json

    from leadscore.model import load_models
    from leadscore.sales.adjustments import adjustments_as_events, read_table

    models = load_models(list(model))
    half_lives = {m.name: m.engagement.decay.half_life_days if m.engagement.decay else None
                  for m in models}
    messages = adjustments_as_events(read_table(table), half_lives)
    head = events.read_text(encoding="utf-8") if events is not None else ""
    if head and not head.endswith("\n"):
        head += "\n"
    out.write_text(head + "".join(json.dumps(m) + "\n" for m in messages), encoding="utf-8")
    say(f"wrote {len(messages):,} events to {out}")
