"""The `leadscore` command: every command group's commands under one root with `--version`.

One way in: each command group is a module of `leadscore.cli` with its own `commands` (a
`typer.Typer`), merged here in the order `leadscore --help` lists them.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperGroup

from leadscore import __version__
from leadscore.cli import (
    check,
    demo,
    explain,
    learn,
    privacy,
    programs,
    sales,
    score,
    segments,
    service,
    warehouse,
)
from leadscore.cli.console import say

GROUPS = (check, score, warehouse, explain, demo, learn, service, segments, programs, sales,
          privacy)

# `leadscore --help` lists the commands by task, in this order; a command not named here is
# listed under "More" (so a new command shows up even before it is placed).
TASKS = (
    ("Get started", ("demo",)),
    ("Score", ("check", "score", "explain")),
    ("Warehouse", ("compile", "dbt")),
    ("Serve", ("init", "serve", "import", "rescore")),
    ("Learn", ("evaluate", "learn")),
    ("Lifecycle", ("segments", "programs")),
    ("Sales", ("routing", "feedback", "adjustments")),
    ("Privacy", ("forget", "export-lead", "retention")),
)


class NamedArgument(TyperArgument):
    """An argument whose help shows its metavar alone: typer adds the Python type to an
    argument's metavar (`FILE <list[Path]>`), never to an option's."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None if self.metavar else super().display_type_rich(ctx)


class Root(TyperGroup):
    """The `leadscore` group: every argument with a metavar, in every command, is shown as a
    `NamedArgument`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _name_arguments(self)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The commands in sections by task (`TASKS`), each with its one-line help."""
        shown: dict[str, Any] = {}
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                shown[name] = command
        placed = {name for _, names in TASKS for name in names}
        sections = [*TASKS, ("More", tuple(n for n in shown if n not in placed))]
        width = formatter.width - 6 - max(map(len, shown), default=0)
        for title, names in sections:
            rows = [(n, shown[n].get_short_help_str(width)) for n in names if n in shown]
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def _name_arguments(group: TyperGroup) -> None:
    for command in group.commands.values():
        if isinstance(command, TyperGroup):
            _name_arguments(command)
        for param in command.params:
            if type(param) is TyperArgument and param.metavar:
                param.__class__ = NamedArgument


app = typer.Typer(
    name="leadscore",
    help="Lead scoring that explains itself: fit, engagement and lifecycle.",
    cls=Root,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
for group in GROUPS:
    app.add_typer(group.commands)


def _version(value: bool) -> None:
    if value:
        say(f"leadscore {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """Lead scoring that explains itself: fit, engagement and lifecycle."""


def main() -> None:
    """Entry point of the `leadscore` console script."""
    app()
