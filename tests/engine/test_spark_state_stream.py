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
    filtered_chain,
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


def test_accounts_from_chained_state_runs_on_spark(spark: Any, tmp_path: Path) -> None:
    from leadscore.engine.batch import connect
    from leadscore.engine.batch.accounts import score_accounts
    from leadscore.engine.batch.state import accounts_with_state, score_stream_with_state
    from tests.engine.outputs import rows_of
    from tests.engine.test_state_stream import write

    u1, u2 = {"userId": "u1"}, {"userId": "u2"}
    day1 = [identify(u1, {"job_level": "user"}, at(1), "i1"),
            {"type": "group", **u1, "groupId": "acme", "messageId": "g1", "timestamp": at(1),
             "traits": {"industry": "retail"}},
            track(u1, "Demo Requested", at(2), "t1")]
    day2 = [{"type": "group", **u2, "groupId": "acme", "messageId": "g2", "timestamp": at(6),
             "traits": {"industry": "software"}},
            identify(u2, {"job_level": "decision maker"}, at(6), "i2"),
            page(u2, "/pricing", at(7), "p1")]
    got = []
    with spark_settings(spark):
        for n, (messages, as_of) in enumerate(((day1, cut(3)), (day2, cut(9)))):
            day = write(messages, tmp_path / f"day{n}.jsonl")
            scores, _ = score_stream_with_state(MODEL, str(day), None, as_of,
                                                tmp_path / "state", spark)
            got.append(accounts_with_state([MODEL], scores, None, as_of, tmp_path / "state",
                                           spark))
    whole = write(day1 + day2, tmp_path / "whole.jsonl")
    con = connect()
    try:
        for table, as_of in zip(got, (cut(3), cut(9)), strict=True):
            want = score_accounts(MODEL, str(whole), as_of=as_of, con=con)
            assert_same_rows(rows_of(want, "account_id"), rows_of(table, "account_id"))
    finally:
        con.close()
    assert [r["disqualified"] for r in got[0].to_pylist()] == [True]      # retail, then
    assert [r["disqualified"] for r in got[1].to_pylist()] == [False]     # software


def test_chained_spark_state_runs_apply_the_filters_as_one_run(spark: Any, tmp_path: Path
                                                               ) -> None:
    with spark_settings(spark):
        filtered_chain(tmp_path, spark)
