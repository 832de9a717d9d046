"""Purchases as SQL (`model.purchases` holds the one definition): a purchase is an event
matching one of the model's `customer` lifecycle rules' `on`; its value is the first of
`VALUE_PATHS` that is a number. The plan reads them for `purchases`, `customer_since` and the
RFM columns; `rfm_query` is the stand-alone batch query of those columns."""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from leadscore.engine.sql.build import alias, col, double, or_, table, text
from leadscore.engine.sql.semantics import matches
from leadscore.model.compiled import CompiledModel, compile_model
from leadscore.model.purchases import VALUE_PATHS, purchase_matchers
from leadscore.model.schema import Model
from leadscore.timeutil import US_PER_DAY


def purchase_value(columns: Mapping[str, str]) -> exp.Expr:
    """SQL for `value_of` over the canonical events columns (sqlglot, any dialect): the first
    of VALUE_PATHS that is a number, else 0 (text that is no number counts as none)."""
    values: list[exp.Expr] = [
        exp.TryCast(this=exp.column(p, quoted=True), to=exp.DataType.build("DOUBLE"))
        for p in VALUE_PATHS if p in columns and "BOOL" not in columns[p].upper()]
    zero = exp.cast(exp.Literal.number(0), exp.DataType.Type.DOUBLE)
    return exp.func("COALESCE", *values, zero) if values else zero


def is_purchase(model: Model | CompiledModel, columns: Mapping[str, str]) -> exp.Expr:
    """SQL: this event is a purchase under `model`."""
    compiled = model if isinstance(model, CompiledModel) else compile_model(model)
    matchers = purchase_matchers(compiled)
    return or_(*(matches(m, columns) for m in matchers)) if matchers else exp.false()


def purchase_sql(model: Model, columns: Mapping[str, str]) -> str:
    """DuckDB SQL of "this event is a purchase under `model`" over the canonical events."""
    return is_purchase(model, columns).sql(dialect="duckdb")


def rfm_query(model: Model, events_table: str, columns: Mapping[str, str], as_of: int
              ) -> exp.Select:
    """One row per customer of `model`: `lead_id, model, recency_days, frequency, monetary,
    tenure_days` as of `as_of` (µs)."""
    as_of_us = exp.Literal.number(as_of)

    def days_since(ts: exp.Expr) -> exp.Expr:
        return exp.Div(this=double(exp.Sub(this=as_of_us.copy(), expression=ts)),
                       expression=exp.Literal.number(US_PER_DAY))

    return exp.select(
        col("lead_id"), alias(text(model.name), "model"),
        alias(days_since(exp.Max(this=col("ts"))), "recency_days"),
        alias(exp.Count(this=exp.Star()), "frequency"),
        alias(double(exp.Sum(this=purchase_value(columns))), "monetary"),
        alias(days_since(exp.Min(this=col("ts"))), "tenure_days"),
    ).from_(table(events_table)).where(exp.and_(
        exp.LTE(this=col("ts"), expression=as_of_us.copy()),
        exp.Paren(this=is_purchase(model, columns)))).group_by(col("lead_id"))
