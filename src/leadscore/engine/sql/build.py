"""The builders every query of the SQL layer is made of: sqlglot expressions spelled so that
each dialect renders them alike (DESIGN.md §5) — quoted names, DOUBLE/BIGINT casts rather than
decimal literals, constant TRUE/FALSE folded away."""

from __future__ import annotations

import math
from collections.abc import Sequence

from sqlglot import exp


def col(name: str, table: str | None = None) -> exp.Column:
    """A quoted column, optionally of `table`."""
    return exp.column(name, table=table, quoted=True)


def alias(expression: exp.Expr, name: str) -> exp.Expr:
    """`expression AS "name"`."""
    return exp.alias_(expression, name, quoted=True)


def table(name: str, as_: str | None = None) -> exp.Expr:
    """A quoted table (or CTE) name, optionally `AS "as_"`."""
    found = exp.Table(this=exp.to_identifier(name, quoted=True))
    return found.as_(as_, quoted=True) if as_ else found


def double(expression: exp.Expr) -> exp.Expr:
    return exp.cast(expression, exp.DataType.Type.DOUBLE)


def bigint(expression: exp.Expr) -> exp.Expr:
    return exp.cast(expression, exp.DataType.Type.BIGINT)


def case(whens: Sequence[tuple[exp.Expr, exp.Expr]], default: exp.Expr | None = None
         ) -> exp.Expr:
    """CASE WHEN condition THEN value … [ELSE default] END."""
    built = exp.Case()
    for condition, value in whens:
        built = built.when(condition, value)
    return built.else_(default) if default is not None else built


def coalesce(expression: exp.Expr, default: exp.Expr) -> exp.Expr:
    return exp.func("COALESCE", expression, default)


def greatest(items: Sequence[exp.Expr]) -> exp.Expr:
    """GREATEST of non-NULL arguments (every item must be non-NULL: dialects differ there)."""
    if len(items) == 1:
        return items[0]
    return exp.Greatest(this=items[0], expressions=list(items[1:]), ignore_nulls=True)


def sum_of(items: Sequence[exp.Expr]) -> exp.Expr:
    """items[0] + items[1] + … (at least one item)."""
    total = items[0]
    for item in items[1:]:
        total = exp.Add(this=total, expression=item)
    return total


def sql_type(name: str) -> exp.DataType | str:
    """A column's SQL type name as a sqlglot type; one sqlglot does not know stays VARCHAR."""
    try:
        return exp.DataType.build(name)
    except Exception:   # an engine's own type name sqlglot does not know: leave it untyped
        return "VARCHAR"


def number(value: float) -> exp.Expr:
    """A numeric literal that stays a number in every dialect (no decimal literals)."""
    if isinstance(value, int) or (math.isfinite(value) and value == int(value)
                                  and abs(value) < 2**53):
        return exp.Literal.number(int(value))
    return exp.cast(exp.Literal.string(repr(float(value))), exp.DataType.Type.DOUBLE)


def instant(value: int | exp.Expr) -> exp.Expr:
    """A moment in µs: an integer literal, or an expression such as the warehouse's current
    time (`Dialect.now_us`) when a compiled plan is scored "as of now" wherever it runs."""
    return exp.Literal.number(value) if isinstance(value, int) else value.copy()


def text(value: str) -> exp.Expr:
    return exp.Literal.string(value)


def and_(*items: exp.Expr) -> exp.Expr:
    """AND with constants folded (TRUE dropped; any FALSE makes FALSE)."""
    kept = []
    for item in items:
        if _is_false(item):
            return exp.false()
        if not _is_true(item):
            kept.append(item)
    if not kept:
        return exp.true()
    return kept[0] if len(kept) == 1 else exp.and_(*kept)


def or_(*items: exp.Expr) -> exp.Expr:
    """OR with constants folded (FALSE dropped; any TRUE makes TRUE)."""
    kept = []
    for item in items:
        if _is_true(item):
            return exp.true()
        if not _is_false(item):
            kept.append(item)
    if not kept:
        return exp.false()
    return kept[0] if len(kept) == 1 else exp.or_(*kept)


def not_(item: exp.Expr) -> exp.Expr:
    if _is_true(item):
        return exp.false()
    if _is_false(item):
        return exp.true()
    return exp.not_(item)


def never_null(item: exp.Expr) -> exp.Expr:
    """`item`, FALSE where it would be NULL."""
    if isinstance(item, exp.Boolean):
        return item
    return exp.func("COALESCE", item, exp.false())


def _is_true(item: exp.Expr) -> bool:
    return isinstance(item, exp.Boolean) and item.this is True


def _is_false(item: exp.Expr) -> bool:
    return isinstance(item, exp.Boolean) and item.this is False
