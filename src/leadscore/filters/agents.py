"""The maintained user-agent lists (`bots.txt`, `scanners.txt` beside this module: where they
come from and how to update them is written at their top), read once, as one regular
expression each."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

HERE = Path(__file__).parent


def read_list(name: str) -> tuple[str, ...]:
    """The patterns of a list file: one per line, `#` comments and blank lines skipped."""
    lines = (HERE / name).read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip() and not line.startswith("#"))


@cache
def matcher(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One case-insensitive expression searching for any of `patterns` (None: no pattern)."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


@cache
def bots() -> tuple[str, ...]:
    return read_list("bots.txt")


@cache
def scanners() -> tuple[str, ...]:
    return read_list("scanners.txt")
