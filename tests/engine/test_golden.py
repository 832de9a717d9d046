"""Golden files: a model, leads and events → the expected scores, with the arithmetic written
out in each file (tests/fixtures/golden/*.yaml). Every file runs through every engine."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from leadscore.engine.batch import score_many
from leadscore.engine.incremental import Scorer
from leadscore.events import event_from_row, lead_from_row
from leadscore.model.schema import Model
from leadscore.timeutil import parse_timestamp
from leadscore.yamlfile import load_yaml

GOLDEN = sorted((Path(__file__).parents[1] / "fixtures" / "golden").glob("*.yaml"))


def load_case(path: Path) -> dict[str, Any]:
    case = load_yaml(path.read_text())
    case["model"] = Model.model_validate(case["model"])
    case["as_of_us"] = parse_timestamp(case["as_of"])
    return case


def table(rows: list[dict[str, Any]], first: tuple[str, ...]) -> pa.Table:
    """Rows as a table; a column whose values mix types becomes text (as a CSV would)."""
    names = list(first) + sorted({k for r in rows for k in r} - set(first))
    columns = {}
    for name in names:
        values = [r.get(name) for r in rows]
        kinds = {type(v) for v in values if v is not None}
        if len(kinds) > 1 and kinds != {int, float}:
            values = [None if v is None else str(v) for v in values]
        columns[name] = values
    return pa.table(columns) if rows else pa.table({n: pa.array([], pa.string()) for n in names})


def incremental(case: dict[str, Any], leads: pa.Table, events: pa.Table) -> dict[str, dict]:
    scorer = Scorer(case["model"])
    for row in leads.to_pylist():
        lead = lead_from_row(row)
        scorer.identify(lead.lead_id, lead.traits, lead.account, as_of=case["as_of_us"])
    for row in events.to_pylist():
        event = event_from_row(row)
        if event.timestamp <= case["as_of_us"]:
            scorer.update_one(event, as_of=case["as_of_us"])
    return {s.lead_id: s.row() for s in scorer.scores(as_of=case["as_of_us"])}


def batch(case: dict[str, Any], leads: pa.Table, events: pa.Table, **engine: Any
          ) -> dict[str, dict]:
    result = score_many(case["model"], events, leads if leads.num_rows else None,
                        as_of=case["as_of"], **engine)
    return {row["lead_id"]: row for row in result.to_pylist()}


def on_spark(case: dict[str, Any], leads: pa.Table, events: pa.Table, *, spark: Any = None
             ) -> dict[str, dict]:
    return batch(case, leads, events, engine="spark", spark=spark)


ENGINES = {"incremental": incremental, "duckdb": batch, "spark": on_spark}


def matches(actual: Any, expected: Any, column: str) -> bool:
    if column == "interests":   # expected: {topic: weight} in rank order
        pairs = [(i["topic"], i["weight"]) for i in actual]
        return [t for t, _ in pairs] == list(expected) and all(
            math.isclose(w, expected[t], rel_tol=1e-6, abs_tol=1e-6) for t, w in pairs)
    if column in ("customer_since", "as_of") and expected is not None:
        expected = parse_timestamp(expected)
        actual = actual if isinstance(actual, int) or actual is None else parse_timestamp(actual)
    if isinstance(expected, float) and actual is not None:
        return math.isclose(actual, expected, rel_tol=1e-6, abs_tol=1e-6)
    return bool(actual == expected)


@pytest.mark.parametrize("engine", [pytest.param(e, marks=pytest.mark.spark) if e == "spark"
                                    else e for e in sorted(ENGINES)])
@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden(path: Path, engine: str, request: pytest.FixtureRequest) -> None:
    case = load_case(path)
    events = table([{"type": "page" if "path" in e else "track", **e}
                    for e in case.get("events", [])],
                   ("lead_id", "timestamp", "type", "event", "path"))
    leads = table(case.get("leads", []), ("lead_id",))
    extra = {"spark": request.getfixturevalue("spark")} if engine == "spark" else {}
    scores = ENGINES[engine](case, leads, events, **extra)
    if "expected_leads" in case:
        assert sorted(scores) == sorted(case["expected_leads"])
    for want in case["expected"]:
        got = scores[want["lead_id"]]
        for column, value in want.items():
            assert matches(got[column], value, column), (
                f"{path.name}: lead {want['lead_id']}: {column} = {got[column]!r}, "
                f"expected {value!r}")


def test_there_is_a_golden_file_per_rule_kind() -> None:
    names = {p.stem for p in GOLDEN}
    assert {"decay", "limit-once", "limit-daily-timezone", "limit-weekly", "distinct", "cap",
            "page-globs", "where", "fit-and-grades", "disqualify", "thresholds", "lifecycle",
            "as-of"} <= names
