"""`leadscore explain`: why one lead has its score, rule by rule."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from leadscore.cli.console import clean_errors, fail, out, say
from leadscore.cli.options import as_of_us
from leadscore.model.schema import Model
from leadscore.timeutil import iso

commands = typer.Typer()


@commands.command()
@clean_errors
def explain(
    model: Annotated[Path, typer.Option("--model", "-m", metavar="FILE",
                                        help="The model file.")],
    events: Annotated[str, typer.Option("--events", "-e", metavar="FILE", help="Events: "
                                        ".parquet, .csv or .jsonl.")],
    lead: Annotated[str, typer.Option("--lead", metavar="ID", help="The lead_id to explain.")],
    leads: Annotated[str | None, typer.Option("--leads", "-l", metavar="FILE",
                                              help="Leads (traits).")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", metavar="TIME", help="Explain the "
                                              "score as of this time (ISO 8601); default: "
                                              "now.")] = None,
) -> None:
    """Show why a lead has its score: every rule, its points, the events it matched."""
    from leadscore.engine.batch.inputs import lead_history
    from leadscore.explain import explain as explain_lead
    from leadscore.model import load_model

    when = as_of_us(as_of)
    loaded = load_model(model)
    its_events, profile = lead_history(events, leads, lead, when)
    if not its_events and profile is None:
        fail(f"error: lead {lead!r} has no events in {events}"
             + (f" and no row in {leads}" if leads else "") + f" as of {iso(when)}")
    result = explain_lead(loaded, its_events, profile or lead, as_of=when)
    show_explanation(result, loaded)


def show_explanation(result: Any, model: Model) -> None:
    """A table of the reasons, summing to the score, then grade, temperature, stage, MQL."""
    table = Table(title=f"lead {result.lead_id} under {model.name}, as of {iso(result.as_of)}",
                  title_justify="left")
    for name, justify in (("rule", "left"), ("kind", "left"), ("points", "right"),
                          ("matched", "right"), ("counted", "right"),
                          (f"last match ({model.timezone})", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for reason in result.reasons:
        engagement = reason.kind in ("engagement", "program")   # events behind them
        table.add_row(
            reason.rule,
            reason.kind if reason.kind != "disqualify" else f"disqualify: {reason.detail}",
            _points(reason.points),
            str(reason.matched) if engagement else "",
            str(reason.counted) if engagement else "",
            _when(reason.last_at, model.timezone) if engagement and reason.last_at is not None
            else "",
            style="red" if reason.kind == "disqualify" else None,
        )
    table.add_section()
    table.add_row("score", "", _points(result.score), style="bold")
    out.print(table)
    say(f"score {_num(result.score)} = fit {_num(result.fit)} + engagement "
        f"{_num(result.engagement)}", "bold")
    verdict = (f"grade {result.grade or '-'} · {result.temperature or '-'} · stage "
               f"{result.stage} · MQL {'yes' if result.mql else 'no'}")
    if result.disqualified:
        verdict += f" · disqualified: {result.disqualify_reason}"
    if result.customer_since is not None:
        verdict += (f" · customer since {iso(result.customer_since)[:10]} "
                    f"({result.purchases} purchase{'s' * (result.purchases != 1)})")
    say(verdict, "bold")
    if getattr(result, "interests", ()):
        from leadscore.model.interests import summary

        say(summary(result.interests, top=5), "bold")


def _when(us: int, zone: str) -> str:
    """A time to the minute in the model's zone (the one its daily/weekly limits count in),
    which the column's heading names."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    moment = datetime.fromtimestamp(us / 1_000_000, UTC).astimezone(ZoneInfo(zone))
    return moment.strftime("%Y-%m-%d %H:%M")


def _points(value: float) -> str:
    return f"{value:+.2f}"


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
