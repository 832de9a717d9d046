"""Ages: how old a date trait is at the score's time (`age_of` fit rules, issue #17).

A date trait (`created_at: "2024-01-24"`) is never compared for equality: a fit rule reads its
**age in days** as of `as_of`, a real number (`(as_of − instant) / 1 day`), and its bands
compare that ("created in the last 30 days": `{lt: 30}`). The instant of a text value is read
by calendar arithmetic from its digits, exactly as the SQL of `engine.sql.ages` does, so that
every engine agrees to the microsecond:

- `YYYY-MM-DD` (midnight UTC), optionally `THH:MM`, `:SS`, a fraction (ignored: the age counts
  whole seconds), then `Z` or `±HH:MM` (none: UTC); a space may stand for the `T`;
- the year from 1000 to 9999; a day past the month's end counts on (`2024-02-30` is March 1);
- a date or datetime value (a DATE or TIMESTAMP column of a leads table) is its instant
  (naive: UTC); anything else — a number, a word — has no age: its bands do not match.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from leadscore.timeutil import US_PER_DAY, US_PER_SECOND, parse_timestamp

# The text an age is read from. [0-9] rather than \d: the same pattern runs in every SQL
# dialect (POSIX, RE2, Java), where \d is not universal.
DATE_TEXT = (r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
             r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]+)?)?"
             r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?)?$")
_DATE_TEXT = re.compile(DATE_TEXT)
# The band operators an age takes: it is a number of days (never equality on a date).
AGE_OPERATORS: tuple[str, ...] = ("gt", "gte", "lt", "lte", "range", "exists")
# Days from 0000-03-01 to 1970-01-01 in the proleptic Gregorian calendar.
EPOCH_DAYS = 719_468


def civil_days(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a calendar date (Hinnant's days_from_civil, for year ≥ 1:
    every division is of a non-negative number, so SQL's truncating division agrees)."""
    shifted = year - (1 if month <= 2 else 0)
    march_based = (month + 9) % 12       # March is 0, February 11
    return (365 * shifted + shifted // 4 - shifted // 100 + shifted // 400
            + (153 * march_based + 2) // 5 + day - 1 - EPOCH_DAYS)


def text_instant_us(value: str) -> int | None:
    """The instant (µs) a date text names, or None where it is not one (see the module)."""
    if _DATE_TEXT.match(value) is None:
        return None
    days = civil_days(int(value[0:4]), int(value[5:7]), int(value[8:10]))
    seconds = days * 86_400
    if len(value) > 10:
        seconds += int(value[11:13]) * 3600 + int(value[14:16]) * 60
        if value[16:17] == ":":
            seconds += int(value[17:19])
    if len(value) >= 22 and value[-6] in "+-" and value[-3] == ":":
        offset = int(value[-5:-3]) * 3600 + int(value[-2:]) * 60
        seconds -= offset if value[-6] == "+" else -offset
    return seconds * US_PER_SECOND


def instant_us(value: Any) -> int | None:
    """The instant (µs) of a date trait's value, or None where it has none."""
    if isinstance(value, str):
        return text_instant_us(value)
    if isinstance(value, datetime | date):
        return parse_timestamp(value)
    return None


def age_days(value: Any, as_of: int) -> float | None:
    """How many days old the date `value` is at `as_of` (µs); None where it is no date.
    Negative for a date after `as_of`."""
    found = instant_us(value)
    # Through a float first, as SQL's CAST(… AS DOUBLE) / 86400000000: the same last bit.
    return None if found is None else float(as_of - found) / US_PER_DAY
