"""Timestamps as integer microseconds since the epoch (UTC); calendar buckets in a time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

US_PER_DAY = 86_400_000_000
US_PER_SECOND = 1_000_000
# 1970-01-01 was a Thursday: shifting by 3 days makes ISO weeks (Monday first) start at 0.
ISO_WEEK_SHIFT_DAYS = 3


def parse_timestamp(value: object) -> int:
    """Microseconds since the epoch for an ISO-8601 string, datetime, date or epoch number.

    Naive times are UTC. Raises ValueError naming the value when it cannot be read.
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return _datetime_us(dt)
    if isinstance(value, date):
        return _datetime_us(datetime(value.year, value.month, value.day, tzinfo=UTC))
    if isinstance(value, int | float):
        # Epoch seconds, milliseconds or microseconds, by magnitude (as Segment tools do).
        magnitude = abs(value)
        if magnitude < 1e11:
            return round(value * US_PER_SECOND)
        if magnitude < 1e14:
            return round(value * 1000)
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO-8601 timestamp: {value!r}") from None
        return parse_timestamp(dt)
    raise ValueError(f"not a timestamp: {value!r}")


def _datetime_us(dt: datetime) -> int:
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * US_PER_SECOND + delta.microseconds


def to_datetime(us: int) -> datetime:
    return datetime.fromtimestamp(us / US_PER_SECOND, tz=UTC).replace(
        microsecond=us % US_PER_SECOND)


def iso(us: int) -> str:
    return to_datetime(us).isoformat().replace("+00:00", "Z")


def now_us() -> int:
    return _datetime_us(datetime.now(UTC))


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def utc_offset_us(us: int, tz: str) -> int:
    """The UTC offset (µs) of a time zone at an instant."""
    offset = to_datetime(us).astimezone(zone(tz)).utcoffset()
    return 0 if offset is None else round(offset.total_seconds() * US_PER_SECOND)


def local_day(us: int, tz: str) -> int:
    """The calendar day (days since 1970-01-01) of an instant in a time zone."""
    if tz == "UTC":
        return us // US_PER_DAY
    return (us + utc_offset_us(us, tz)) // US_PER_DAY


def iso_week(day: int) -> int:
    """The ISO week (Monday first) of a day number, as weeks since the one holding 1970-01-01."""
    return (day + ISO_WEEK_SHIFT_DAYS) // 7
