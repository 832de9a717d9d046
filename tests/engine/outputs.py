"""What an engine gives back, in one form (`Output`), and the one comparison of two outputs.

One tolerance, `REL_TOL` = `ABS_TOL` = 1e-9. The engines add the same decayed terms in
different orders and representations: `update_one` in float64 in arrival order, `fold_many` in
vectorised sums against a reference time, DuckDB and Spark in parallel SQL aggregates (interest
weights as DECIMAL(38, 12)), `--state` rescaled from its watermark by 2^((ref − T)/half-life).
Each is exact to ~1e-15 relative per term, so a few hundred terms differ by ~1e-13: a billionth
leaves three digits of margin yet sits far below the smallest difference a rule makes (a
point, decayed). The absolute part is for sums near 0, where a relative tolerance means nothing
(positive and negative points cancelling, decimals rounded at 1e-12). Everything else —
ids, grades, stages, flags, counts, reasons' names, handoff ids and moments — is compared exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from leadscore.scores import Handoff
from leadscore.timeutil import parse_timestamp

REL_TOL = ABS_TOL = 1e-9

Rows = dict[tuple[str, str], dict[str, Any]]     # (model, lead or account id) → row


@dataclass(frozen=True)
class Output:
    """Scores of one run: the leads' rows; the accounts' rows (None where the engine does not
    score accounts or the world has none); the handoffs raised, in order, and each lead's
    reasons (None where the engine gives none). Times are µs."""

    leads: Rows
    accounts: Rows | None = None
    handoffs: list[dict[str, Any]] | None = None
    reasons: dict[tuple[str, str], list[tuple[Any, ...]]] | None = None
    # the score columns this engine does not give (the compiled statement: no `interests`)
    missing: tuple[str, ...] = ()

    def without_handoffs(self) -> Output:
        """What does not depend on the order the events arrive in."""
        return Output(self.leads, self.accounts, None, self.reasons, self.missing)


def rows_of(table: pa.Table, id_column: str = "lead_id") -> Rows:
    """A scores table (or account scores, `id_column="account_id"`) as rows by (model, id)."""
    return {(row["model"], row[id_column]): {k: _plain(v) for k, v in row.items()}
            for row in table.to_pylist()}


def handoff_row(handoff: Handoff) -> dict[str, Any]:
    """A handoff with its score as a row and its reasons."""
    return {"id": handoff.id, "lead_id": handoff.lead_id, "model": handoff.model,
            "at": handoff.at, "event": handoff.event, **handoff.score.row(),
            "reasons": [tuple(r) for r in handoff.reasons]}


def _plain(value: Any) -> Any:
    return parse_timestamp(value) if isinstance(value, datetime) else value


def same(a: Any, b: Any) -> bool:
    """Equal, floats within the tolerance; interest profiles as topic → weight (two topics of
    equal weight may rank either way)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if _is_profile(a) and _is_profile(b):
            return same({i["topic"]: i["weight"] for i in a}, {i["topic"]: i["weight"] for i in b})
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
            return a is b
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return bool(a == b)


def _is_profile(items: list[Any] | tuple[Any, ...]) -> bool:
    return bool(items) and all(isinstance(i, Mapping) and "topic" in i for i in items)


def assert_same_rows(expected: Rows, actual: Rows, what: str = "leads",
                     missing: tuple[str, ...] = ()) -> None:
    """The same rows; `missing`: columns `actual` does not have by design."""
    assert actual.keys() == expected.keys(), (
        f"{what}: missing {sorted(expected.keys() - actual.keys())}, "
        f"unexpected {sorted(actual.keys() - expected.keys())}")
    for key, want in expected.items():
        got = actual[key]
        want = {k: v for k, v in want.items() if k not in missing}
        assert got.keys() == want.keys(), (what, key, sorted(want.keys() ^ got.keys()))
        for column, value in want.items():
            assert same(value, got[column]), (what, key, column, value, got[column])


def assert_agree(expected: Output, actual: Output) -> None:
    """The one comparison: the same leads' scores, and the same accounts, reasons and
    handoffs where both outputs have them."""
    assert_same_rows(expected.leads, actual.leads, missing=actual.missing)
    if expected.accounts is not None and actual.accounts is not None:
        assert_same_rows(expected.accounts, actual.accounts, "accounts")
    if expected.reasons is not None and actual.reasons is not None:
        assert actual.reasons.keys() == expected.reasons.keys(), "reasons"
        for key, want in expected.reasons.items():
            assert same(want, actual.reasons[key]), ("reasons", key, want, actual.reasons[key])
    if expected.handoffs is not None and actual.handoffs is not None:
        assert [h["id"] for h in actual.handoffs] == [h["id"] for h in expected.handoffs], (
            "handoffs", expected.handoffs, actual.handoffs)
        for one, other in zip(expected.handoffs, actual.handoffs, strict=True):
            assert same(one, other), ("handoff", one, other)
