"""The one exception hierarchy of leadscore: every error a user can cause is a LeadscoreError."""

from __future__ import annotations

from dataclasses import dataclass


class LeadscoreError(Exception):
    """Base of every error leadscore raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a model file: where, what, what was expected, and a hint."""

    file: str
    line: int | None
    key: str
    message: str
    value: object = None
    expected: str | None = None
    suggestion: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.key}: {self.message}"
        if self.value is not None:
            text += f" (got {self.value!r})"
        if self.expected and self.expected not in self.message:   # said once, not twice
            text += f"; expected {self.expected}"
        if self.suggestion:
            text += f". Did you mean {self.suggestion!r}?"
        return text


class ModelError(LeadscoreError):
    """A model file does not validate; carries every problem found in it."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class EventError(LeadscoreError):
    """An event or lead record is malformed (names the file, row and field)."""

    def __init__(self, message: str, *, source: str | None = None, row: int | None = None,
                 field: str | None = None):
        self.source, self.row, self.field = source, row, field
        where = ", ".join(
            part for part in (
                source,
                f"row {row}" if row is not None else None,
                f"field {field!r}" if field else None,
            ) if part
        )
        super().__init__(f"{where}: {message}" if where else message)


class InputError(LeadscoreError):
    """An input file or table cannot be used (missing, unreadable, missing columns)."""


class EngineError(LeadscoreError):
    """A scoring engine failed on valid input (a bug or an unsupported backend feature)."""


class RejectedRowsWarning(UserWarning):
    """Rows of an input the Python API could not use were skipped (the CLI writes them to a
    rejected-rows file; `read_events` / `read_leads` report every one, `strict=True` fails)."""


class FilteredEventsWarning(UserWarning):
    """Events of a batch input were kept out of scoring by the filters (bots, internal
    traffic, link scanners: `leadscore.filters`); how many each filter caught."""


# Optional dependencies → the extra of pyproject.toml that installs them.
EXTRAS: dict[str, str] = {
    "pandas": "learn", "sklearn": "learn", "lightgbm": "learn", "optbinning": "learn",
    "altair": "learn", "vl_convert": "learn", "pyspark": "spark", "polars": "polars",
}


def missing_extra(exc: ImportError) -> str | None:
    """One line naming the extra to install when `exc` is an optional dependency missing;
    None when it is anything else (a bug, not an install step)."""
    name = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(name)
    if extra is None:
        return None
    return (f"this needs the optional dependency {name}, which is not installed: "
            f"pip install 'leadscore[{extra}]'")
