"""Options shared by several commands (`--config`, `--db`), and option values that need more
than their type to be read: the `--as-of` time."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from leadscore.cli.console import fail
from leadscore.timeutil import now_us, parse_timestamp

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", metavar="FILE",
    help="config file (default: $LEADSCORE_CONFIG, else ./leadscore.toml)")]
DbOption = Annotated[str | None, typer.Option(
    "--db", metavar="URL", help="database URL (sqlite:///file.db or postgresql://…) "
                                "[$LEADSCORE_DB]")]


def as_of_us(text: str | None) -> int:
    """`--as-of` in microseconds since the epoch; none given: now."""
    if text is None:
        return now_us()
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        fail(f"error: --as-of: {exc}; expected ISO 8601 such as 2026-05-01T00:00:00Z")
