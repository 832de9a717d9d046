"""The checks every engine of the registry (engines.py) gets: it agrees with the reference
(`update_one`) on drawn worlds, with and without accounts, and on a long stream; its scores do
not depend on the order the events arrive in; its state survives being saved and loaded back;
it never mutates what it is given. A check that does not apply to an engine is skipped with
the reason the registry gives."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from leadscore.timeutil import US_PER_DAY
from tests.engine.engines import ENGINES, REFERENCE, Engine, Step, new_run, reference_runs
from tests.engine.outputs import Output, assert_agree
from tests.engine.worlds import World, long_world, worlds

ALL = [engine.param() for engine in ENGINES.values()]


def examples(count: int, *more: HealthCheck) -> settings:
    return settings(max_examples=count, deadline=None, suppress_health_check=[
        HealthCheck.too_slow, HealthCheck.data_too_large, *more])


def score(engine: Engine, world: World, data: st.DataObject, spark: Any) -> Output:
    with new_run(data, spark) as run:
        return engine.score(world, run)


def not_the_reference(engine: Engine) -> None:
    if engine is REFERENCE:
        pytest.skip(f"{engine.name} is the reference the other engines are compared with")


@pytest.mark.parametrize("engine", ALL)
def test_agrees_with_the_reference(engine: Engine, request: pytest.FixtureRequest) -> None:
    not_the_reference(engine)
    spark = engine.session(request)

    @examples(engine.examples_for(1))
    @given(world=worlds(accounts=False), data=st.data())
    def check(world: World, data: st.DataObject) -> None:
        assert_agree(score(REFERENCE, world, data, None), score(engine, world, data, spark))

    check()


@pytest.mark.parametrize("engine", ALL)
def test_scores_accounts_as_the_reference_does(engine: Engine,
                                               request: pytest.FixtureRequest) -> None:
    not_the_reference(engine)
    if engine.no_accounts:
        pytest.skip(f"{engine.name} scores no accounts: {engine.no_accounts}")
    spark = engine.session(request)

    @examples(engine.examples_for(1 / 2))
    @given(world=worlds(accounts=True), data=st.data())
    def check(world: World, data: st.DataObject) -> None:
        got = score(engine, world, data, spark)
        assert got.accounts is not None
        assert_agree(score(REFERENCE, world, data, None), got)

    check()


@pytest.mark.parametrize("engine", ALL)
def test_agrees_with_the_reference_on_a_long_stream(engine: Engine,
                                                    request: pytest.FixtureRequest) -> None:
    """Thousands of events, two models side by side (worlds.long_world): `update_many`
    vectorises batches of `MANY` events and more; the same handoffs as `update_one`."""
    not_the_reference(engine)
    spark = engine.session(request)
    world = long_world()

    # a fixed world: the engines' own choices (batches, files) are what hypothesis draws
    @examples(engine.examples_for(1 / 40, least=1), HealthCheck.large_base_example)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        expected = score(REFERENCE, world, data, None)
        assert expected.handoffs is not None and len(expected.handoffs) > 50
        assert {h["model"] for h in expected.handoffs} == {"m", "other"}
        assert_agree(expected, score(engine, world, data, spark))

    check()


@pytest.mark.parametrize("engine", ALL)
def test_independent_of_event_order(engine: Engine, request: pytest.FixtureRequest) -> None:
    """The same events in another order give the same scores (the handoffs, raised as the
    events arrive, may differ)."""
    spark = engine.session(request)

    @examples(engine.examples_for(1 / 3))
    @given(world=worlds(), data=st.data())
    def check(world: World, data: st.DataObject) -> None:
        shuffled = world.with_events(data.draw(st.permutations(world.events)))
        first, second = (score(engine, w, data, spark) for w in (world, shuffled))
        assert_agree(first.without_handoffs(), second.without_handoffs())

    check()


@st.composite
def steps(draw: st.DrawFn, world: World) -> list[Step]:
    """The world's events in two to four runs as they arrive (late ones too), each scored at
    its as_of: from five days before the world's to a day after it, never going back."""
    rows = list(world.events)
    cuts = sorted(draw(st.lists(st.integers(0, len(rows)), min_size=1, max_size=3)))
    parts = [rows[a:b] for a, b in zip([0, *cuts], [*cuts, len(rows)], strict=True)]
    half_days = sorted(draw(st.lists(st.integers(-10, 2), min_size=len(parts),
                                     max_size=len(parts))))
    return [(part, world.as_of + n * US_PER_DAY // 2)
            for part, n in zip(parts, half_days, strict=True)]


@pytest.mark.parametrize("engine", ALL)
def test_state_survives_a_round_trip(engine: Engine, request: pytest.FixtureRequest) -> None:
    """Run after run, each from the state the one before saved (the Scorer's through JSON,
    `--state`'s folder from a new connection): every run scores as `update_one` does over
    the same events without ever saving, handoffs included."""
    if engine.runs is None:
        pytest.skip(f"{engine.name} keeps no state: {engine.stateless}")
    runs = engine.runs
    spark = engine.session(request)

    @examples(engine.examples_for(1))
    @given(world=worlds(), data=st.data())
    def check(world: World, data: st.DataObject) -> None:
        plan = data.draw(steps(world))
        with new_run(data, None) as run:
            expected = reference_runs(world, plan, run)
        with new_run(data, spark) as run:
            got = runs(world, plan, run)
        assert len(got) == len(expected)
        for want, have in zip(expected, got, strict=True):
            assert_agree(want, have)

    check()


def snapshot(value: Any) -> Any:
    """What `value` holds now: a file's or folder's bytes and modification times, a table's
    schema and rows, a model's fields, a deep copy of anything else."""
    if isinstance(value, Path):
        files = [value] if value.is_file() else sorted(p for p in value.rglob("*") if p.is_file())
        return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    if isinstance(value, pa.Table):
        return value.schema, value.to_pylist()
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, list | tuple):
        return [snapshot(v) for v in value]
    return copy.deepcopy(value)


@pytest.mark.parametrize("engine", ALL)
def test_never_mutates_its_inputs(engine: Engine, request: pytest.FixtureRequest) -> None:
    """The models, events, leads and accounts given — objects, tables, files — are as they
    were after scoring."""
    spark = engine.session(request)

    @examples(engine.examples_for(1 / 5))
    @given(world=worlds(), data=st.data())
    def check(world: World, data: st.DataObject) -> None:
        given: list[tuple[Any, Any]] = []
        with new_run(data, spark, lambda v: given.append((v, snapshot(v)))) as run:
            engine.score(world, run)
            assert given, f"{engine.name} hands nothing through run.given"
            for value, before in given:
                assert snapshot(value) == before, value

    check()
