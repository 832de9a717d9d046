"""The dialects a plan renders for, as objects (sqlglot's habit): what a backend spells its own
way is a class attribute or method of its dialect, never an `if dialect == …` branch.

A plan is built for one dialect and rendered with `.sql(dialect=d.NAME)`; everything else it
needs renders alike (`engine.sql.build`). Spark needs its session time zone in UTC for
`local_time` (the Spark runner sets it).
"""

from __future__ import annotations

import difflib
from typing import ClassVar

from sqlglot import exp

from leadscore.engine.sql.build import text


class Dialect:
    """A SQL dialect: its sqlglot name and the functions it spells its own way."""

    NAME: ClassVar[str]
    # A 64-bit hash of a string: the bucket GROUP BY's integer key of a lead.
    HASH: ClassVar[str]

    def local_time(self, ts: exp.Expr, zone: str) -> exp.Expr:
        """The wall-clock time (µs) in time zone `zone` of the instant `ts` (µs, UTC)."""
        raise NotImplementedError

    def hash64(self, value: exp.Expr) -> exp.Expr:
        return exp.Anonymous(this=self.HASH, expressions=[value])

    @classmethod
    def get_or_raise(cls, name: str | Dialect) -> Dialect:
        """The dialect called `name` (or `name` itself, a Dialect); an unknown name raises
        a ValueError naming the near miss."""
        if isinstance(name, Dialect):
            return name
        found = DIALECTS.get(name)
        if found is None:
            near = difflib.get_close_matches(str(name).lower(), list(DIALECTS), n=1, cutoff=0.5)
            hint = f" Did you mean {near[0]!r}?" if near else ""
            raise ValueError(f"Unknown dialect {name!r}.{hint} Expected one of: "
                             f"{', '.join(sorted(DIALECTS))}")
        return found


class DuckDB(Dialect):
    NAME = "duckdb"
    HASH = "hash"

    def local_time(self, ts: exp.Expr, zone: str) -> exp.Expr:
        instant = exp.Anonymous(this="timezone", expressions=[
            text("UTC"), exp.Anonymous(this="make_timestamp", expressions=[ts])])
        local = exp.Anonymous(this="timezone", expressions=[text(zone), instant])
        return exp.Anonymous(this="epoch_us", expressions=[local])


class Spark(Dialect):
    NAME = "spark"
    HASH = "xxhash64"

    def local_time(self, ts: exp.Expr, zone: str) -> exp.Expr:
        # Needs the session time zone set to UTC (spark.sql.session.timeZone=UTC).
        stamp = exp.Anonymous(this="timestamp_micros", expressions=[ts])
        local = exp.Anonymous(this="from_utc_timestamp", expressions=[stamp, text(zone)])
        return exp.Anonymous(this="unix_micros", expressions=[local])


DIALECTS: dict[str, Dialect] = {d.NAME: d for d in (DuckDB(), Spark())}
