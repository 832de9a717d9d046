"""The dialects a plan renders for, as objects (sqlglot's habit): what a backend spells its own
way is a class attribute or method of its dialect, never an `if dialect == …` branch.

A plan is built for one dialect and rendered with `.sql(dialect=d.NAME)`; everything else it
needs renders alike (`engine.sql.build`). Spark needs its session time zone in UTC for
`local_time` (the Spark runner sets it).

DuckDB, PostgreSQL and Spark run plans here (the runners and `leadscore compile`'s tests);
Snowflake, BigQuery and Redshift are rendered only (`leadscore compile`): their spellings are
written from each warehouse's documentation and parsed back by sqlglot in tests.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import ClassVar

import sqlglot
from sqlglot import exp

from leadscore.engine.sql.build import text

_SLOT = "__value__"
_MORE = "__more__"
# A text that TRY_CAST(… AS DOUBLE) reads as a number, for backends without TRY_CAST.
NUMBER_PATTERN = r"^\s*[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?\s*$"


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

    # A warehouse's own spellings, as SQL in its dialect with the argument as `__value__`:
    # a timestamp column's instant in µs, µs as a timestamp with time zone, the current time.
    EPOCH_US: ClassVar[str]
    FROM_US: ClassVar[str]
    NOW_US: ClassVar[str]

    # An array of texts (an account's roles): one element `__value__`, none, and two arrays
    # `__value__` and `__more__` joined.
    TEXTS_ONE: ClassVar[str]
    TEXTS_NONE: ClassVar[str]
    TEXTS_JOIN: ClassVar[str]

    def spelled(self, sql: str, value: exp.Expr | None = None, more: exp.Expr | None = None,
                **texts: str) -> exp.Expr:
        """`sql` (this dialect's SQL) with `__value__` replaced by `value`, `__more__` by
        `more` and `{name}` by the text literal `texts[name]`."""
        found = sqlglot.parse_one(f"SELECT {sql}", read=self.NAME).expressions[0]
        for name, literal in texts.items():
            for column in list(found.find_all(exp.Column)):
                if column.name == f"__{name}__":
                    column.replace(text(literal))
        for slot, given in ((_SLOT, value), (_MORE, more)):
            if given is not None:
                for column in list(found.find_all(exp.Column)):
                    if column.name == slot:
                        column.replace(given.copy())
        return found

    def texts_where(self, items: Sequence[tuple[exp.Expr, str]]) -> exp.Expr:
        """The texts of `items` whose condition holds, in their order, as this warehouse's
        array of text (empty: none holds). One array per item joined, not an array with NULLs
        removed: BigQuery refuses NULL elements, Redshift has no function to drop them."""
        arrays: list[exp.Expr] = [
            exp.Case().when(condition.copy(), self.spelled(self.TEXTS_ONE, text(value)))
            .else_(self.spelled(self.TEXTS_NONE)) for condition, value in items]
        if not arrays:
            return self.spelled(self.TEXTS_NONE)
        joined = arrays[0]
        for array in arrays[1:]:
            joined = self.spelled(self.TEXTS_JOIN, joined, array)
        return joined

    def epoch_us(self, value: exp.Expr) -> exp.Expr:
        """The instant of a timestamp column (with a time zone, or without one: UTC) in µs."""
        return self.spelled(self.EPOCH_US, value)

    def from_us(self, value: exp.Expr) -> exp.Expr:
        """µs since the epoch as a timestamp with time zone (UTC)."""
        return self.spelled(self.FROM_US, value)

    def now_us(self) -> exp.Expr:
        """The current time in µs: the same value in every row of one statement."""
        return self.spelled(self.NOW_US)

    def finish(self, plan: exp.Expr) -> exp.Expr:
        """`plan` with what this dialect spells its own way rewritten (in place)."""
        return plan

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
    EPOCH_US = "epoch_us(__value__)"
    FROM_US = "timezone('UTC', make_timestamp(__value__))"
    NOW_US = "epoch_us(now())"
    TEXTS_ONE = "[__value__]"
    TEXTS_NONE = "CAST([] AS VARCHAR[])"
    TEXTS_JOIN = "list_concat(__value__, __more__)"

    def local_time(self, ts: exp.Expr, zone: str) -> exp.Expr:
        instant = exp.Anonymous(this="timezone", expressions=[
            text("UTC"), exp.Anonymous(this="make_timestamp", expressions=[ts])])
        local = exp.Anonymous(this="timezone", expressions=[text(zone), instant])
        return exp.Anonymous(this="epoch_us", expressions=[local])


class Spark(Dialect):
    NAME = "spark"
    HASH = "xxhash64"
    EPOCH_US = "unix_micros(CAST(__value__ AS TIMESTAMP))"
    FROM_US = "timestamp_micros(__value__)"
    NOW_US = "unix_micros(current_timestamp())"
    TEXTS_ONE = "array(__value__)"
    TEXTS_NONE = "CAST(array() AS ARRAY<STRING>)"
    TEXTS_JOIN = "concat(__value__, __more__)"

    def local_time(self, ts: exp.Expr, zone: str) -> exp.Expr:
        # Needs the session time zone set to UTC (spark.sql.session.timeZone=UTC).
        stamp = exp.Anonymous(this="timestamp_micros", expressions=[ts])
        local = exp.Anonymous(this="from_utc_timestamp", expressions=[stamp, text(zone)])
        return exp.Anonymous(this="unix_micros", expressions=[local])


def integer_division(plan: exp.Expr) -> exp.Expr:
    """`a // b` as `a / b`: BIGINT over BIGINT truncates in PostgreSQL and Redshift (sqlglot's
    spellings go through NUMERIC or DOUBLE: slower, and a DOUBLE cannot hold a µs timestamp
    plus the day shift exactly). The plan divides only non-negative integers."""
    # Innermost first: a replaced node's copy must not carry an IntDiv still to replace.
    for node in reversed(list(plan.find_all(exp.IntDiv, bfs=False))):
        node.replace(exp.Paren(this=exp.Div(this=node.this.copy(),
                                            expression=node.expression.copy(), typed=True)))
    return plan


def guarded_casts(plan: exp.Expr) -> exp.Expr:
    """TRY_CAST(text AS DOUBLE) as a CAST where the text reads as a number (NULL elsewhere),
    for PostgreSQL and Redshift, which have no TRY_CAST (sqlglot would write a CAST that fails
    on the first word)."""
    for node in reversed(list(plan.find_all(exp.TryCast, bfs=False))):
        value = node.this
        # Through text, so that a column already numeric passes the same test.
        guard = exp.RegexpLike(this=exp.cast(value.copy(), exp.DataType.Type.VARCHAR),
                               expression=text(NUMBER_PATTERN))
        node.replace(exp.Case().when(guard, exp.cast(value.copy(), node.to.copy())))
    return plan


def first_groups(plan: exp.Expr, dialect: Dialect, spelling: str) -> exp.Expr:
    """REGEXP_EXTRACT(text, pattern, 1) (the first group) as `spelling` (`__value__` the text,
    `__more__` the pattern): PostgreSQL has no such function, Redshift's REGEXP_SUBSTR gives
    the whole match unless told `'e'`. The plans extract only their pattern's first group."""
    for node in reversed(list(plan.find_all(exp.RegexpExtract, bfs=False))):
        node.replace(dialect.spelled(spelling, node.this.copy(), node.expression.copy()))
    return plan


def replacements(plan: exp.Expr) -> exp.Expr:
    """REGEXP_REPLACE(text, pattern, replacement) as Redshift spells it: sqlglot writes
    PostgreSQL's `'g'` flag as a fourth argument, which Redshift reads as a position (and
    refuses); Redshift replaces every match without it."""
    for node in reversed(list(plan.find_all(exp.RegexpReplace, bfs=False))):
        node.replace(exp.Anonymous(this="REGEXP_REPLACE", expressions=[
            node.this.copy(), node.expression.copy(), node.args["replacement"].copy()]))
    return plan


class Postgres(Dialect):
    NAME = "postgres"
    HASH = "hashtextextended"
    EPOCH_US = "CAST(EXTRACT(EPOCH FROM __value__) * 1000000 AS BIGINT)"
    FROM_US = "CAST('epoch' AS TIMESTAMPTZ) + __value__ * INTERVAL '1 microsecond'"
    NOW_US = "CAST(EXTRACT(EPOCH FROM CURRENT_TIMESTAMP) * 1000000 AS BIGINT)"
    TEXTS_ONE = "ARRAY[__value__]"
    TEXTS_NONE = "CAST(ARRAY[] AS TEXT[])"
    TEXTS_JOIN = "array_cat(__value__, __more__)"

    def local_time(self, ts: exp.Expr, zone: str) -> exp.Expr:
        # timestamptz AT TIME ZONE z is the wall clock in z; its EPOCH counts it as UTC.
        return self.spelled("CAST(EXTRACT(EPOCH FROM (CAST('epoch' AS TIMESTAMPTZ) + __value__ "
                            "* INTERVAL '1 microsecond') AT TIME ZONE __zone__) * 1000000 "
                            "AS BIGINT)", ts, zone=zone)

    def hash64(self, value: exp.Expr) -> exp.Expr:
        return exp.Anonymous(this=self.HASH, expressions=[value, exp.Literal.number(0)])

    def finish(self, plan: exp.Expr) -> exp.Expr:
        return first_groups(guarded_casts(integer_division(plan)), self,
                            "SUBSTRING(__value__ FROM __more__)")


class Snowflake(Dialect):
    NAME = "snowflake"
    HASH = "HASH"
    EPOCH_US = "DATE_PART(EPOCH_MICROSECOND, __value__)"
    FROM_US = "CONVERT_TIMEZONE('UTC', TO_TIMESTAMP_NTZ(__value__, 6))"
    NOW_US = "DATE_PART(EPOCH_MICROSECOND, CURRENT_TIMESTAMP())"
    TEXTS_ONE = "ARRAY_CONSTRUCT(__value__)"
    TEXTS_NONE = "ARRAY_CONSTRUCT()"
    TEXTS_JOIN = "ARRAY_CAT(__value__, __more__)"

    def local_time(self, ts: exp.Expr, zone: str) -> exp.Expr:
        return self.spelled("DATE_PART(EPOCH_MICROSECOND, CONVERT_TIMEZONE('UTC', __zone__, "
                            "TO_TIMESTAMP_NTZ(__value__, 6)))", ts, zone=zone)

    def finish(self, plan: exp.Expr) -> exp.Expr:
        # Snowflake's TRY_CAST takes text only, and sqlglot writes it as a CAST: spell it out.
        for node in reversed(list(plan.find_all(exp.TryCast, bfs=False))):
            node.replace(exp.Anonymous(this="TRY_TO_DOUBLE", expressions=[node.this.copy()]))
        return plan


class BigQuery(Dialect):
    NAME = "bigquery"
    HASH = "FARM_FINGERPRINT"
    EPOCH_US = "UNIX_MICROS(TIMESTAMP(__value__))"
    FROM_US = "TIMESTAMP_MICROS(__value__)"
    NOW_US = "UNIX_MICROS(CURRENT_TIMESTAMP())"
    TEXTS_ONE = "[__value__]"
    TEXTS_NONE = "CAST([] AS ARRAY<STRING>)"
    TEXTS_JOIN = "ARRAY_CONCAT(__value__, __more__)"

    def local_time(self, ts: exp.Expr, zone: str) -> exp.Expr:
        # DATETIME(ts, zone) is the wall clock in zone; TIMESTAMP() of it counts it as UTC.
        return self.spelled("UNIX_MICROS(TIMESTAMP(DATETIME(TIMESTAMP_MICROS(__value__), "
                            "__zone__)))", ts, zone=zone)

    def finish(self, plan: exp.Expr) -> exp.Expr:
        # A column name holds letters, digits and underscores only: `properties.x` becomes
        # `properties__x` (inside the statement; the scores' own columns have no dots). LIKE
        # has no ESCAPE clause: the backslash escapes already.
        for identifier in plan.find_all(exp.Identifier):
            if "." in identifier.name:
                identifier.set("this", identifier.name.replace(".", "__"))
        for node in reversed(list(plan.find_all(exp.Escape, bfs=False))):
            node.replace(node.this.copy())
        return plan


class Redshift(Dialect):
    NAME = "redshift"
    HASH = "FNV_HASH"
    EPOCH_US = "DATEDIFF(microsecond, CAST('1970-01-01' AS TIMESTAMP), __value__)"
    FROM_US = "CAST(DATEADD(second, CAST(FLOOR(__value__ / 1000000.0) AS INT), DATEADD(" \
        "microsecond, CAST(MOD(__value__, 1000000) AS INT), CAST('1970-01-01' AS TIMESTAMP)))" \
        " AS TIMESTAMPTZ)"
    NOW_US = "DATEDIFF(microsecond, CAST('1970-01-01' AS TIMESTAMP), SYSDATE)"
    TEXTS_ONE = "ARRAY(__value__)"
    TEXTS_NONE = "ARRAY()"
    TEXTS_JOIN = "ARRAY_CONCAT(__value__, __more__)"

    def local_time(self, ts: exp.Expr, zone: str) -> exp.Expr:
        naive = self.spelled("DATEADD(second, CAST(FLOOR(__value__ / 1000000.0) AS INT), "
                             "DATEADD(microsecond, CAST(MOD(__value__, 1000000) AS INT), "
                             "CAST('1970-01-01' AS TIMESTAMP)))", ts)
        return self.spelled("DATEDIFF(microsecond, CAST('1970-01-01' AS TIMESTAMP), "
                            "CONVERT_TIMEZONE('UTC', __zone__, __value__))", naive, zone=zone)

    def finish(self, plan: exp.Expr) -> exp.Expr:
        return replacements(first_groups(guarded_casts(integer_division(plan)), self,
                                         "REGEXP_SUBSTR(__value__, __more__, 1, 1, 'e')"))


DIALECTS: dict[str, Dialect] = {d.NAME: d for d in (
    DuckDB(), Spark(), Postgres(), Snowflake(), BigQuery(), Redshift())}
# Where a compiled plan is run in this project's tests (the others are rendered only).
EXECUTED = ("duckdb", "postgres", "spark")
