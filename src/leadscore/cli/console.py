"""Where every command writes, and how an error a user can cause reaches them: one clear red
line (or one line per model problem) and a non-zero exit, never a traceback.

A leaf of the CLI: every command module imports it, it imports no command.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

from leadscore.errors import (
    FilteredEventsWarning,
    LeadscoreError,
    ModelError,
    RejectedRowsWarning,
    missing_extra,
)

# Tables get room when the output is a file or a pipe (rich would assume 80 columns).
_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 140
out = Console(soft_wrap=True, highlight=False, width=_WIDTH)
err = Console(stderr=True, soft_wrap=True, highlight=False, width=_WIDTH)

F = TypeVar("F", bound=Callable[..., Any])


class Failed(Exception):
    """Already reported to the user: exit with status 1."""


def say(text: str, style: str | None = None, *, console: Console = out) -> None:
    """Print one line as it is (no markup, no wrapping)."""
    console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)


def fail(text: str) -> NoReturn:
    """Print `text` as one red line on stderr and exit with status 1."""
    say(text, "bold red", console=err)
    raise Failed


def clean_errors(command: F) -> F:
    """Turn every error a user can cause into red lines and exit 1 (never a traceback)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():    # restores the previous display on the way out
                shown = warnings.showwarning

                def show(message: Any, category: Any, *rest: Any, **more: Any) -> None:
                    if issubclass(category, RejectedRowsWarning | FilteredEventsWarning):
                        # a line, not a location
                        say(f"warning: {message}", "yellow", console=err)
                    else:
                        shown(message, category, *rest, **more)

                warnings.showwarning = show
                return command(*args, **kwargs)
        except Failed:
            raise typer.Exit(1) from None
        except ModelError as exc:
            for problem in exc.problems:
                say(str(problem), "red", console=err)
            raise typer.Exit(1) from None
        except (LeadscoreError, OSError) as exc:
            say(f"error: {exc}", "bold red", console=err)
            raise typer.Exit(1) from None
        except Exception as exc:  # a bug: one line unless asked for the traceback
            if isinstance(exc, ImportError) and (line := missing_extra(exc)):
                say(f"error: {line}", "bold red", console=err)   # an install step, not a bug
                raise typer.Exit(1) from None
            if os.environ.get("LEADSCORE_DEBUG"):
                raise
            say(f"internal error: {type(exc).__name__}: {exc} (set LEADSCORE_DEBUG=1 for the "
                "traceback, and please report it)", "bold red", console=err)
            raise typer.Exit(70) from None

    return run  # type: ignore[return-value]
