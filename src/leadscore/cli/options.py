"""Option values that need more than their type to be read: the `--as-of` time."""

from __future__ import annotations

from leadscore.cli.console import fail
from leadscore.timeutil import now_us, parse_timestamp


def as_of_us(text: str | None) -> int:
    """`--as-of` in microseconds since the epoch; none given: now."""
    if text is None:
        return now_us()
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        fail(f"error: --as-of: {exc}; expected ISO 8601 such as 2026-05-01T00:00:00Z")
