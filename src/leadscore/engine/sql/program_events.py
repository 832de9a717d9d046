"""The program events of `model.program_events` as SQL over the canonical events columns (the
plan's `ev` stage and the `--state` fold share these), giving exactly the Python functions'
values: a points event's points, a stage event's stage rank, else NULL."""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from leadscore.engine.sql.build import and_, col, number, or_, text
from leadscore.engine.sql.conditions import STRING, column_kind, numeric
from leadscore.model.program_events import (
    FEEDBACK_STAGES,
    MAX_POINTS,
    POINTS_EVENT,
    STAGE_EVENT,
    STAGE_RANKS,
)

POINTS_COLUMN = "properties.points"
STAGE_COLUMN = "properties.stage"
MODEL_COLUMN = "properties.model"
# The fixed-point type points are summed in: |points| ≤ MAX_POINTS (7 digits), 12 places.
POINTS_TYPE = "DECIMAL(20, 12)"


def _is_event(name: str, columns: Mapping[str, str], model: str) -> exp.Expr | None:
    """SQL: a track/screen event named `name` meant for `model` (None: never, no `event`)."""
    if "event" not in columns:
        return None
    named = exp.func("COALESCE", exp.EQ(this=col("event"), expression=text(name)), exp.false())
    for_model: exp.Expr = exp.true()
    if MODEL_COLUMN in columns:
        absent = exp.Is(this=col(MODEL_COLUMN), expression=exp.Null())
        for_model = or_(absent, exp.EQ(this=col(MODEL_COLUMN), expression=text(model))) \
            if column_kind(columns[MODEL_COLUMN]) == STRING else absent
    return and_(exp.NEQ(this=col("type"), expression=text("page")), named, for_model)


def points_sql(columns: Mapping[str, str], model: str) -> exp.Expr | None:
    """The points a `Program Points Added` event adds (DOUBLE), else NULL; None where no event
    of these columns can add any."""
    matched = _is_event(POINTS_EVENT, columns, model)
    as_number = numeric(col(POINTS_COLUMN), column_kind(columns[POINTS_COLUMN])) \
        if POINTS_COLUMN in columns else None
    if matched is None or as_number is None:
        return None
    value = exp.cast(as_number[0], exp.DataType.Type.DOUBLE)
    # |points| ≤ MAX_POINTS also rules out NaN and infinities (NaN sorts above every number).
    bounded = exp.LTE(this=exp.Abs(this=value.copy()), expression=number(MAX_POINTS))
    return exp.Case().when(and_(matched, as_number[1], bounded), value)


def stage_sql(columns: Mapping[str, str], model: str) -> exp.Expr | None:
    """The stage rank a `Lifecycle Stage Set` or a feedback event sets, else NULL; None where
    no event of these columns can set one."""
    matched = _is_event(STAGE_EVENT, columns, model)
    if matched is None:
        return None
    found = exp.Case()
    if STAGE_COLUMN in columns and column_kind(columns[STAGE_COLUMN]) == STRING:
        rank = exp.Case(this=col(STAGE_COLUMN))
        for stage, value in STAGE_RANKS.items():
            rank = rank.when(text(stage), exp.Literal.number(value))
        found = found.when(matched, rank)
    for name, stage in FEEDBACK_STAGES.items():
        verdict = _is_event(name, columns, model)
        assert verdict is not None
        found = found.when(verdict, exp.Literal.number(STAGE_RANKS[stage]))
    return found
