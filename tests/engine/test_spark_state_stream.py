"""`--engine spark --state` over a Segment message stream: chained runs on Spark, each given
only its day's file, equal one DuckDB run over the whole stream (test_state_stream.py holds
the cases; here fewer examples, Spark being slow). Marked `spark`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from leadscore.engine.batch.spark import settings as spark_settings
from tests.engine.outputs import assert_same_rows
from tests.engine.test_state_stream import (
    MODEL,
    at,
    chained,
    cut,
    identify,
    page,
    split_streams,
    track,
)

pytestmark = pytest.mark.spark


def test_an_anonymous_visit_merges_into_the_person_identified_the_next_day_on_spark(
        spark: Any, tmp_path: Path) -> None:
    a1, u1 = {"anonymousId": "a1"}, {"userId": "u1"}
    day1 = [page(a1, "/pricing", at(1), "p1"),
            track(a1, "Vehicle Interest Submitted", at(2), "t1", model="suv"),
            identify(u1, {"occupation": "teacher"}, at(2), "i0")]
    day2 = [identify({**u1, **a1}, {"email": "ann@example.org"}, at(10), "i1"),
            page(u1, "/pricing/team", at(11), "p2"),
            identify(u1, {"occupation": "student"}, at(3), "i2")]     # late: before day 1
    with spark_settings(spark):
        runs = chained(MODEL, [(day1, cut(5)), (day2, cut(20))], tmp_path, spark=spark)
    assert sorted(lead for _, lead in runs[1][1]) == ["u1"]
    assert runs[1][1][("stream-state", "u1")]["disqualified"]
    assert [report.mode for _, _, report in runs] == ["rebuild", "incremental"]
    for whole, state, _ in runs:
        assert_same_rows(whole, state)


@settings(max_examples=4, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(split=split_streams())
def test_chained_spark_state_runs_equal_one_run_over_the_whole_stream(
        split: tuple[list[list[dict[str, Any]]], list[int]], spark: Any,
        tmp_path_factory: Any) -> None:
    parts, times = split
    with spark_settings(spark):
        runs = chained(MODEL, list(zip(parts, times, strict=True)),
                       tmp_path_factory.mktemp("spark-chain"), spark=spark)
    for whole, state, _ in runs:
        assert_same_rows(whole, state)
