"""Conditions compiled to SQL (sqlglot expressions) that give exactly `conditions.holds`.

Every predicate is wrapped so it is never NULL (TRUE or FALSE, so `not` works), and the column's
type decides what can match at all: a number never equals a string, `glob` needs text, and so
on; where the type can never match, the predicate is the constant FALSE. A path without a column
is a missing value: only `exists: false` holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlglot import exp

from leadscore.engine.sql.build import and_, never_null, not_, number, or_, text
from leadscore.globs import LIKE_ESCAPE, glob_to_like
from leadscore.model import conditions as cond

# The kinds of column a value can have, from its SQL type.
STRING, INTEGER, DOUBLE, BOOLEAN, OTHER = "string", "integer", "double", "boolean", "other"

_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
                  "USMALLINT", "UINTEGER", "UBIGINT", "INT", "LONG", "SHORT", "BYTE")
_DOUBLE_TYPES = ("DOUBLE", "FLOAT", "REAL", "DECIMAL", "NUMERIC")


def column_kind(sql_type: str) -> str:
    """The kind (string, integer, double, boolean, other) of a SQL type name."""
    name = sql_type.upper().split("(")[0].strip()
    if name in ("VARCHAR", "STRING", "TEXT", "CHAR") or name.startswith("VARCHAR"):
        return STRING
    if name in _INTEGER_TYPES:
        return INTEGER
    if name in _DOUBLE_TYPES:
        return DOUBLE
    if name in ("BOOLEAN", "BOOL"):
        return BOOLEAN
    return OTHER


def like(column: exp.Expr, pattern: str) -> exp.Expr:
    """`column LIKE pattern ESCAPE '\\'` (DuckDB's LIKE has no default escape character).

    A pattern without the escape character means the same without ESCAPE, and DuckDB runs
    that form as a prefix/suffix/contains test (`LIKE … ESCAPE` is ~2× slower on 1M leads)."""
    matching = exp.Like(this=column, expression=text(pattern))
    if LIKE_ESCAPE not in pattern:
        return matching
    return exp.Escape(this=matching, expression=text(LIKE_ESCAPE))


# Largest finite double, as text so no dialect reads it as a decimal literal.
_MAX_DOUBLE = exp.cast(text("1.7976931348623157e308"), exp.DataType.Type.DOUBLE)
_INFINITY = exp.cast(text("Infinity"), exp.DataType.Type.DOUBLE)
_COMPARE = {"gt": exp.GT, "gte": exp.GTE, "lt": exp.LT, "lte": exp.LTE}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def numeric(column: exp.Expr, kind: str) -> tuple[exp.Expr, exp.Expr] | None:
    """(the value as a number, the guard that it is one), as `conditions.as_number` reads it;
    None where a column of this kind never holds a number."""
    if kind == INTEGER:
        return column, exp.true()
    if kind == DOUBLE:
        # NaN is no number to compare (SQL engines sort it above infinity).
        return column, exp.LTE(this=column, expression=_INFINITY)
    if kind == STRING:
        parsed = exp.TryCast(this=column, to=exp.DataType.build("DOUBLE"))
        finite = exp.LTE(this=exp.Abs(this=parsed.copy()), expression=_MAX_DOUBLE)
        return parsed, finite
    return None


def _equals(column: exp.Expr, kind: str, expected: Any) -> exp.Expr:
    """`conditions.equals(value, expected)` for a present value (NULL-safe)."""
    if isinstance(expected, bool):
        if kind != BOOLEAN:
            return exp.false()
        return never_null(exp.EQ(this=column, expression=exp.Boolean(this=expected)))
    if _is_number(expected):
        if kind not in (INTEGER, DOUBLE):
            return exp.false()
        return never_null(exp.EQ(this=column, expression=number(expected)))
    if kind != STRING:
        return exp.false()
    return never_null(exp.EQ(this=column, expression=text(str(expected))))


def _in(column: exp.Expr, kind: str, values: tuple[Any, ...]) -> exp.Expr:
    matching = [v for v in values if not _never(_equals(column, kind, v))]
    if not matching:
        return exp.false()
    if len(matching) == 1:
        return _equals(column, kind, matching[0])
    literals = [exp.Boolean(this=v) if isinstance(v, bool) else (
        number(v) if _is_number(v) else text(str(v))) for v in matching]
    return never_null(exp.In(this=column, expressions=literals))


def predicate(pred: cond.Predicate, column: exp.Expr | None, kind: str
              ) -> exp.Expr:
    """SQL for `holds(pred, value)` where `column` holds the value (None: no such column)."""
    op, expected = pred.op, pred.value
    if column is None:
        return exp.Boolean(this=op == "exists" and expected is False)
    missing = exp.Is(this=column.copy(), expression=exp.Null())
    present = exp.not_(missing.copy())
    if op == "exists":
        if kind == STRING:   # the empty string is no value
            empty = exp.EQ(this=column.copy(), expression=text(""))
            return exp.or_(missing, empty) if expected is False else exp.and_(
                present, exp.NEQ(this=column.copy(), expression=text("")))
        return present if expected else missing
    if op == "eq":
        return _equals(column, kind, expected)
    if op == "ne":
        return and_(present, not_(_equals(column, kind, expected)))
    if op == "in":
        return _in(column, kind, expected)
    if op == "not_in":
        return and_(present, not_(_in(column, kind, expected)))
    if op in _COMPARE:
        compare = _COMPARE[op]
        if isinstance(expected, str):
            if kind != STRING:
                return exp.false()
            return never_null(compare(this=column, expression=text(expected)))
        as_number = numeric(column, kind)
        if as_number is None:
            return exp.false()
        value, guard = as_number
        return never_null(and_(guard, compare(this=value.copy(), expression=number(expected))))
    if op == "range":
        as_number = numeric(column, kind)
        if as_number is None:
            return exp.false()
        value, guard = as_number
        low, high = expected
        return never_null(and_(guard, exp.Between(this=value.copy(), low=number(low),
                                                  high=number(high))))
    if kind != STRING:
        return exp.false()
    if op == "glob":
        return never_null(like(column, glob_to_like(expected)))
    if op == "regex":
        return never_null(exp.RegexpLike(this=column, expression=text(expected)))
    if op == "contains":
        return never_null(like(column, "%" + _like_escape(expected) + "%"))
    if op == "domain_in":
        lowered = exp.Lower(this=column)
        tests: list[exp.Expr] = []
        for domain in expected:
            tests.append(exp.EQ(this=lowered.copy(), expression=text(domain)))
            tests.append(like(lowered.copy(), "%@" + _like_escape(domain)))
            tests.append(like(lowered.copy(), "%." + _like_escape(domain)))
        return never_null(or_(*tests))
    raise ValueError(f"unknown operator {op!r}")


def _like_escape(value: str) -> str:
    return "".join(LIKE_ESCAPE + c if c in ("%", "_", LIKE_ESCAPE) else c for c in value)


def to_sql(condition: cond.Condition, columns: Mapping[str, str], *,
           table: str | None = None,
           values: Mapping[str, tuple[exp.Expr | None, str]] | None = None) -> exp.Expr:
    """SQL for `conditions.evaluate(condition, …)` over a table whose columns are named by
    canonical path (`traits.age`, `properties.topic`, `event`) with their SQL types; a path
    in `values` reads an expression of a kind instead (None: no value), such as a date's age
    (`engine.sql.ages`)."""
    def each(item: cond.Condition) -> exp.Expr:
        return to_sql(item, columns, table=table, values=values)

    if isinstance(condition, cond.Predicate):
        if values and condition.path in values:
            value, kind = values[condition.path]
            return predicate(condition, value.copy() if value is not None else None, kind)
        sql_type = columns.get(condition.path)
        if sql_type is None:
            return predicate(condition, None, OTHER)
        column = exp.column(condition.path, table=table, quoted=True)
        return predicate(condition, column, column_kind(sql_type))
    if isinstance(condition, cond.All):
        return and_(*(each(c) for c in condition.items))
    if isinstance(condition, cond.Any_):
        return or_(*(each(c) for c in condition.items))
    return not_(each(condition.item))


def _never(item: exp.Expr) -> bool:
    return isinstance(item, exp.Boolean) and item.this is False
