"""The maintained user-agent lists (`bots.txt`, `scanners.txt` beside this module: where they
come from and how to update them is written at their top), and matching an agent.

The lists are plain text (`^` / `$` anchor a line at the start / end): every event that
carries an agent is checked, and a search for ~130 lower-cased substrings costs microseconds
where one regular expression of as many alternatives costs a couple of milliseconds per
agent (each tried at every position). Verdicts are cached per agent: a site's visitors
send a few thousand distinct agents, again and again."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

HERE = Path(__file__).parent


def read_list(name: str) -> tuple[str, ...]:
    """The lines of a list file, lower-cased; `#` comments and blank lines skipped."""
    lines = (HERE / name).read_text(encoding="utf-8").splitlines()
    return tuple(line.strip().lower() for line in lines
                 if line.strip() and not line.startswith("#"))


@dataclass(frozen=True)
class TextList:
    """Lines to find in a lower-cased agent: anywhere, at its start (`^x`), at its end (`x$`),
    or the whole agent (`^x$`)."""

    anywhere: tuple[str, ...]
    starts: tuple[str, ...]
    ends: tuple[str, ...]
    whole: frozenset[str]

    @classmethod
    def of(cls, lines: tuple[str, ...]) -> TextList:
        anywhere: list[str] = []
        starts: list[str] = []
        ends: list[str] = []
        whole: set[str] = set()
        for line in lines:
            first, last = line.startswith("^"), line.endswith("$")
            text = line.removeprefix("^").removesuffix("$")
            (whole.add(text) if first and last else
             (starts if first else ends if last else anywhere).append(text))
        return cls(tuple(anywhere), tuple(starts), tuple(ends), frozenset(whole))

    def finds(self, agent: str) -> bool:
        low = agent.lower()
        return low in self.whole or low.startswith(self.starts) or \
            low.endswith(self.ends) or any(text in low for text in self.anywhere)


@cache
def bots() -> TextList:
    return TextList.of(read_list("bots.txt"))


@cache
def scanners() -> TextList:
    return TextList.of(read_list("scanners.txt"))


# Agents longer than this are judged uncached: the cache must not hold what a client sent.
CACHED_LENGTH = 512


def is_bot(agent: str) -> bool:
    return _bot(agent) if len(agent) <= CACHED_LENGTH else bots().finds(agent)


def is_scanner(agent: str) -> bool:
    return _scanner(agent) if len(agent) <= CACHED_LENGTH else scanners().finds(agent)


@lru_cache(maxsize=8192)
def _bot(agent: str) -> bool:
    return bots().finds(agent)


@lru_cache(maxsize=8192)
def _scanner(agent: str) -> bool:
    return scanners().finds(agent)


@cache
def expression(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One case-insensitive expression searching for any of `patterns` (a site's own
    `user_agents`; None: none)."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


def matches(agent: str, patterns: tuple[str, ...]) -> bool:
    """Whether a site's own `user_agents` find the agent."""
    if len(agent) <= CACHED_LENGTH:
        return _matches(agent, patterns)
    found = expression(patterns)
    return found is not None and found.search(agent) is not None


@lru_cache(maxsize=8192)
def _matches(agent: str, patterns: tuple[str, ...]) -> bool:
    found = expression(patterns)
    return found is not None and found.search(agent) is not None
