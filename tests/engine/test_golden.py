"""Golden files: a model, leads and events → the expected scores, with the arithmetic written
out in each file (tests/fixtures/golden/*.yaml). Every file runs through every engine of the
registry (tests/engine/engines.py)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadscore.model.schema import Model
from leadscore.timeutil import parse_timestamp
from leadscore.yamlfile import load_yaml
from tests.engine.engines import ENGINES, Engine, new_run
from tests.engine.outputs import Output
from tests.engine.worlds import World

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


def world_of(case: dict[str, Any]) -> World:
    """A golden case as a world every registered engine scores (tests/engine/engines.py)."""
    events = table([{"type": "page" if "path" in e else "track", **e}
                    for e in case.get("events", [])],
                   ("lead_id", "timestamp", "type", "event", "path"))
    leads = table(case.get("leads", []), ("lead_id",))
    accounts = table(case["accounts"], ("account_id",)) if "accounts" in case else None
    return World((case["model"],), tuple(leads.to_pylist()), tuple(events.to_pylist()),
                 case["as_of_us"], None if accounts is None else tuple(accounts.to_pylist()),
                 event_schema=events.schema, lead_schema=leads.schema,
                 **({} if accounts is None else {"account_schema": accounts.schema}))


def scored(engine: Engine, world: World, request: pytest.FixtureRequest,
           check: Callable[[Output], None]) -> None:
    """`check` the engine's output, for a few of the engine's own choices (batches, files)."""
    spark = engine.session(request)

    @settings(max_examples=engine.examples_for(1 / 30, least=1), deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        with new_run(data, spark) as each:
            check(engine.score(world, each))

    run()


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


@pytest.mark.parametrize("engine", [engine.param() for engine in ENGINES.values()])
@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden(path: Path, engine: Engine, request: pytest.FixtureRequest) -> None:
    case = load_case(path)

    def check(output: Output) -> None:
        scores = {lead_id: row for (_, lead_id), row in output.leads.items()}
        if "expected_leads" in case:
            assert sorted(scores) == sorted(case["expected_leads"])
        for want in case["expected"]:
            got = scores[want["lead_id"]]
            for column, value in want.items():
                if column in output.missing:   # not given by this engine, by design
                    continue
                assert matches(got[column], value, column), (
                    f"{path.name}: lead {want['lead_id']}: {column} = {got[column]!r}, "
                    f"expected {value!r}")

    scored(engine, world_of(case), request, check)


def test_there_is_a_golden_file_per_rule_kind() -> None:
    names = {p.stem for p in GOLDEN}
    assert {"decay", "limit-once", "limit-daily-timezone", "limit-weekly", "distinct", "cap",
            "page-globs", "where", "fit-and-grades", "disqualify", "thresholds", "lifecycle",
            "as-of"} <= names
