"""A date trait's age in days as of the plan's `as_of`, in SQL: `model.ages` to the letter.

A text value is read by calendar arithmetic on its digits (SUBSTRING, CAST, integer division
of non-negative numbers), the same in every dialect and the same as the Python reference —
a dialect's own date parsing differs in what it accepts and in the time zone it assumes. A
DATE or TIMESTAMP column is its instant (`Dialect.epoch_us`); any other column has no age.
"""

from __future__ import annotations

from sqlglot import exp

from leadscore.engine.sql.build import bigint, case, double, instant, text
from leadscore.engine.sql.conditions import STRING, column_kind
from leadscore.engine.sql.dialects import Dialect
from leadscore.model.ages import DATE_TEXT, EPOCH_DAYS
from leadscore.timeutil import US_PER_DAY, US_PER_SECOND


def _int(value: int) -> exp.Expr:
    return exp.Literal.number(value)


def _digits(column: exp.Expr, start: int | exp.Expr, length: int) -> exp.Expr:
    """The digits of `column` from `start` (1-based) as a BIGINT."""
    first = _int(start) if isinstance(start, int) else start
    return bigint(exp.Substring(this=column.copy(), start=first, length=_int(length)))


def _div(left: exp.Expr, right: int) -> exp.Expr:
    return exp.IntDiv(this=exp.Paren(this=left), expression=_int(right))


def _add(*items: exp.Expr) -> exp.Expr:
    total = items[0]
    for item in items[1:]:
        total = exp.Add(this=total, expression=item)
    return total


def _mul(value: int, item: exp.Expr) -> exp.Expr:
    return exp.Mul(this=_int(value), expression=item)


def text_seconds(column: exp.Expr) -> exp.Expr:
    """Seconds since the epoch that a date text names (`model.ages.text_instant_us` / 10⁶);
    only meaningful where the text matches `DATE_TEXT`."""
    year, month, day = _digits(column, 1, 4), _digits(column, 6, 2), _digits(column, 9, 2)
    early = exp.LTE(this=month.copy(), expression=_int(2))
    shifted = exp.Paren(this=exp.Sub(this=year, expression=case([(early, _int(1))], _int(0))))
    march_based = exp.Mod(this=exp.Paren(this=exp.Add(this=month, expression=_int(9))),
                          expression=_int(12))
    days: exp.Expr = exp.Sub(
        this=_add(_mul(365, shifted.copy()), _div(shifted.copy(), 4)),
        expression=_div(shifted.copy(), 100))
    days = _add(days, _div(shifted.copy(), 400),
                _div(exp.Add(this=_mul(153, march_based), expression=_int(2)), 5),
                exp.Sub(this=day, expression=_int(1 + EPOCH_DAYS)))
    length = exp.Length(this=column.copy())
    timed = exp.GT(this=length.copy(), expression=_int(10))
    clock = _add(_mul(3600, _digits(column, 12, 2)), _mul(60, _digits(column, 15, 2)),
                 case([(exp.EQ(this=exp.Substring(this=column.copy(), start=_int(17),
                                                  length=_int(1)), expression=text(":")),
                        _digits(column, 18, 2))], _int(0)))
    sign_at = exp.Sub(this=length.copy(), expression=_int(5))
    sign = exp.Substring(this=column.copy(), start=sign_at, length=_int(1))
    zoned = exp.and_(
        exp.GTE(this=length.copy(), expression=_int(22)),
        exp.In(this=sign.copy(), expressions=[text("+"), text("-")]),
        exp.EQ(this=exp.Substring(this=column.copy(),
                                  start=exp.Sub(this=length.copy(), expression=_int(2)),
                                  length=_int(1)), expression=text(":")))
    offset = _add(_mul(3600, _digits(column, exp.Sub(this=length.copy(), expression=_int(4)),
                                     2)),
                  _mul(60, _digits(column, exp.Sub(this=length.copy(), expression=_int(1)), 2)))
    signed = case([(exp.EQ(this=sign, expression=text("+")), exp.Neg(this=exp.Paren(
        this=offset.copy())))], offset)
    return _add(_mul(86_400, exp.Paren(this=days)),
                case([(timed, exp.Paren(this=clock))], _int(0)),
                case([(zoned, signed)], _int(0)))


def instant_us(column: exp.Expr, sql_type: str, dialect: Dialect) -> exp.Expr | None:
    """The instant (µs) of a date trait's column, NULL where it holds no date; None where a
    column of this type never holds one."""
    if column_kind(sql_type) == STRING:
        looks = exp.RegexpLike(this=column.copy(), expression=text(DATE_TEXT))
        return case([(looks, exp.Mul(this=exp.Paren(this=text_seconds(column)),
                                     expression=_int(US_PER_SECOND)))], bigint(exp.Null()))
    base = sql_type.upper().split("(")[0].strip()
    if base == "DATE" or base.startswith(("TIMESTAMP", "DATETIME")):
        return dialect.epoch_us(column)
    return None


def age_days(column: exp.Expr, sql_type: str, as_of_us: int | exp.Expr, dialect: Dialect
             ) -> exp.Expr | None:
    """`(as_of − instant) / 1 day` as a DOUBLE (`model.ages.age_days`), NULL without a date;
    None where a column of this type never holds one."""
    found = instant_us(column, sql_type, dialect)
    if found is None:
        return None
    return exp.Div(this=double(exp.Sub(this=instant(as_of_us), expression=found)),
                   expression=_int(US_PER_DAY))
