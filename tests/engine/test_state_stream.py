"""`--state` over a Segment message stream (issue #15): runs chained over a stream cut into
files — each run given only its own file — score exactly as one run over all of them, as of
each run's time. A later identify or alias moves events folded under an anonymous id to the
person, an alias chain renames a lead, a trait set late counts from then on, messages that
arrive late or twice count as in one run. On DuckDB here; Spark in test_spark_state_stream.py."""

from __future__ import annotations

import csv
import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.engine.batch import connect, score_many
from leadscore.engine.batch.accounts import score_accounts
from leadscore.engine.batch.state import (
    RunReport,
    accounts_with_state,
    score_stream_with_state,
)
from leadscore.errors import InputError, RejectedRowsWarning
from leadscore.filters import Filters
from leadscore.model.loader import load_model
from leadscore.model.schema import Model
from leadscore.timeutil import US_PER_DAY, iso
from tests.engine.outputs import Rows, assert_same_rows, rows_of
from tests.engine.test_state import filtered_said
from tests.test_stream_agreement import NOW, START, streams

# the stream test's model, with interests and lifecycle stages: every output column moves
MODEL_TEXT = """\
name: stream-state
fit:
  - {name: gave an e-mail, when: {email: {exists: true}}, points: 5}
  - {name: decides, when: {job_level: {eq: decision maker}}, points: 10}
  - {name: student, when: {occupation: {eq: student}}, disqualify: student}
  - {name: software company, when: {account.industry: {eq: software}}, points: 15}
engagement:
  decay: {half_life_days: 20}
  rules:
    - {name: requested a demo, event: Demo Requested, points: 30, limit: once}
    - {name: pricing page, page: /pricing*, points: 10, limit: daily}
    - {name: interest, event: Vehicle Interest Submitted, points: 5, distinct: properties.model}
    - {name: opened, event: Email Opened, points: 2, cap: 6}
interests:
  - {topic: "{properties.model}", event: Vehicle Interest Submitted, points: 5}
  - {topic: pricing, page: /pricing*, points: 3, limit: daily}
lifecycle:
  - {stage: subscriber, on: {event: Email Opened}}
  - {stage: lead, when: {email: {exists: true}}}
grades: {A: 15, B: 5, C: 0}
temperature: {hot: 30, warm: 5}
thresholds: {mql: 40}
account:
  fit:
    - {name: target industry, when: {industry: {eq: software}}, points: 20}
    - {name: retail, when: {industry: {eq: retail}}, disqualify: retail}
  engagement: {rollup: sum}
  roles: {attribute: job_level, want: [decision maker, user]}
  thresholds: {mqa: 50}
"""
MODEL = load_model("stream-state.yaml", text=MODEL_TEXT)
HOUR = US_PER_DAY // 24


def write(messages: list[dict[str, Any]], path: Path) -> Path:
    path.write_text("".join(json.dumps(m) + "\n" for m in messages))
    return path


def chained(model: Model, days: list[tuple[list[dict[str, Any]], int]], folder: Path,
            spark: Any = None) -> list[tuple[Rows, Rows, RunReport]]:
    """Per (messages, as_of): the run from the state given only that day's file (on Spark
    where `spark` is a session), and one run over every file so far (DuckDB)."""
    out = []
    con = connect() if spark is None else spark
    try:
        so_far: list[dict[str, Any]] = []
        for n, (messages, as_of) in enumerate(days):
            so_far += messages
            day = write(messages, folder / f"day{n}.jsonl")
            whole = write(so_far, folder / f"whole{n}.jsonl")
            table, report = score_stream_with_state(model, str(day), None, as_of,
                                                    folder / "state", con)
            out.append((rows_of(score_many(model, str(whole), as_of=as_of)), rows_of(table),
                        report))
    finally:
        if spark is None:
            con.close()
    return out


def at(day: int, hour: int = 10) -> str:
    return iso(START + day * US_PER_DAY + hour * HOUR)


def page(who: dict[str, str], path: str, when: str, mid: str) -> dict[str, Any]:
    return {"type": "page", **who, "messageId": mid, "timestamp": when,
            "properties": {"path": path}}


def track(who: dict[str, str], event: str, when: str, mid: str, **props: Any
          ) -> dict[str, Any]:
    return {"type": "track", **who, "event": event, "messageId": mid, "timestamp": when,
            "properties": props}


def identify(who: dict[str, str], traits: dict[str, Any], when: str, mid: str
             ) -> dict[str, Any]:
    return {"type": "identify", **who, "traits": traits, "messageId": mid, "timestamp": when}


def cut(day: int) -> int:
    return START + day * US_PER_DAY


# ---------------------------------------------------------------- the property


@st.composite
def split_streams(draw: st.DrawFn) -> tuple[list[list[dict[str, Any]]], list[int]]:
    """A generated stream (anonymous visits, identify, alias chains, group calls, traits set
    late, duplicate messageIds) in a random order cut at random points into 2–3 files, and
    each run's as_of (non-decreasing; a file may hold messages after its run's as_of, and
    messages older than the run before: late ones)."""
    messages = draw(streams(max_size=30))
    order = draw(st.permutations(range(len(messages))))
    shuffled = [messages[i] for i in order]
    if draw(st.booleans()):          # half the time roughly in time order: fewer late ones
        shuffled.sort(key=lambda m: (m["timestamp"], draw(st.integers(0, 3))))
    files = draw(st.integers(2, 3))
    points = sorted(draw(st.lists(st.integers(0, len(shuffled)), min_size=files - 1,
                                  max_size=files - 1)))
    bounds = [0, *points, len(shuffled)]
    parts = [shuffled[a:b] for a, b in itertools.pairwise(bounds)]
    times = sorted(draw(st.lists(st.integers(START, NOW), min_size=files - 1,
                                 max_size=files - 1)))
    return parts, [*times, NOW]


@settings(max_examples=40, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(split=split_streams())
def test_chained_state_runs_equal_one_run_over_the_whole_stream(
        split: tuple[list[list[dict[str, Any]]], list[int]], tmp_path_factory: Any) -> None:
    parts, times = split
    folder = tmp_path_factory.mktemp("chain")
    for whole, state, _ in chained(MODEL, list(zip(parts, times, strict=True)), folder):
        assert_same_rows(whole, state)


@settings(max_examples=15, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(split=split_streams())
def test_accounts_from_chained_state_runs_equal_one_run(
        split: tuple[list[list[dict[str, Any]]], list[int]], tmp_path_factory: Any) -> None:
    """Group calls and company objects across the files: the accounts after each chained
    run (`accounts_with_state`) equal `score_accounts` over every file so far."""
    parts, times = split
    folder = tmp_path_factory.mktemp("accounts")
    con = connect()
    try:
        so_far: list[dict[str, Any]] = []
        for n, (messages, as_of) in enumerate(zip(parts, times, strict=True)):
            so_far += messages
            day = write(messages, folder / f"day{n}.jsonl")
            whole = write(so_far, folder / f"whole{n}.jsonl")
            scores, _ = score_stream_with_state(MODEL, str(day), None, as_of,
                                                folder / "state", con)
            got = accounts_with_state([MODEL], scores, None, as_of,
                                      folder / "state", con)
            want = score_accounts(MODEL, str(whole), as_of=as_of)
            assert_same_rows(rows_of(want, "account_id"), rows_of(got, "account_id"))
    finally:
        con.close()


# ---------------------------------------------------------------- named cases


def test_an_anonymous_visit_in_day_one_merges_into_the_person_identified_in_day_two(
        tmp_path: Path) -> None:
    a1, u1 = {"anonymousId": "a1"}, {"userId": "u1"}
    day1 = [page(a1, "/pricing", at(1), "p1"),
            track(a1, "Vehicle Interest Submitted", at(2), "t1", model="suv")]
    day2 = [identify({**u1, **a1}, {"email": "ann@example.org"}, at(10), "i1"),
            page(u1, "/pricing/team", at(11), "p2")]
    runs = chained(MODEL, [(day1, cut(5)), (day2, cut(20))], tmp_path)
    (_, state1, _), (_, state2, report) = runs
    assert set(state1) == {("stream-state", "a1")}
    assert set(state2) == {("stream-state", "u1")}        # a1 is no lead of its own
    assert report.mode == "incremental" and report.late_leads == 2     # a1 and u1 redone
    row = state2[("stream-state", "u1")]
    assert row["stage"] == "lead" and row["fit"] == 5
    assert sorted(i["topic"] for i in row["interests"]) == ["pricing", "suv"]   # with a1's
    for whole, state, _ in runs:
        assert_same_rows(whole, state)


def test_an_alias_chain_across_days_renames_the_lead_and_keeps_its_history(
        tmp_path: Path) -> None:
    days = [
        ([page({"anonymousId": "a1"}, "/pricing", at(1), "p1"),
          identify({"userId": "u3", "anonymousId": "a1"}, {"job_level": "user"}, at(2), "i1"),
          track({"userId": "u3"}, "Demo Requested", at(3), "t1")], cut(4)),
        ([{"type": "alias", "userId": "u2", "previousId": "u3", "messageId": "al1",
           "timestamp": at(5)},
          track({"userId": "u2"}, "Email Opened", at(6), "t2")], cut(8)),
        ([{"type": "alias", "userId": "u1", "previousId": "u2", "messageId": "al2",
           "timestamp": at(9)},
          page({"userId": "u1"}, "/pricing", at(9, 12), "p2")], cut(12)),
    ]
    runs = chained(MODEL, days, tmp_path)
    assert [sorted(lead for _, lead in state) for _, state, _ in runs] == [
        ["u3"], ["u2"], ["u1"]]
    last = runs[-1][1][("stream-state", "u1")]
    assert last["mql"] and last["engagement"] > 30    # u3's demo and a1's visit count
    for whole, state, _ in runs:
        assert_same_rows(whole, state)


def test_a_disqualifying_trait_set_late_counts_from_its_time_on(tmp_path: Path) -> None:
    u1 = {"userId": "u1"}
    day1 = [identify(u1, {"occupation": "teacher", "email": "t@example.org"}, at(1), "i1"),
            track(u1, "Demo Requested", at(2), "t1"), page(u1, "/pricing", at(3), "p1")]
    # sent on day 9, arriving with day 2's file after the first run (as of day 6) and a
    # late page view of day 4
    day2 = [identify(u1, {"occupation": "student"}, at(9), "i2"),
            page(u1, "/pricing", at(4), "p2")]
    runs = chained(MODEL, [(day1, cut(6)), (day2, cut(8)), ([], cut(12))], tmp_path)
    flags = [state[("stream-state", "u1")]["disqualified"] for _, state, _ in runs]
    assert flags == [False, False, True]      # not before the identify's time
    assert runs[2][1][("stream-state", "u1")]["temperature"] == "dead"
    for whole, state, _ in runs:
        assert_same_rows(whole, state)


def test_a_message_sent_twice_counts_once_the_earlier_copy(tmp_path: Path) -> None:
    u1 = {"userId": "u1"}
    first = track(u1, "Demo Requested", at(3), "dup")
    again_later = {**first, "timestamp": at(4)}      # a repeat: dropped
    again_earlier = {**first, "timestamp": at(1)}    # the earlier copy wins: a rebuild
    runs = chained(MODEL, [([first], cut(5)), ([again_later], cut(6)),
                           ([again_earlier], cut(7))], tmp_path)
    assert [report.mode for _, _, report in runs] == ["rebuild", "incremental", "rebuild"]
    for whole, state, _ in runs:
        assert_same_rows(whole, state)


def test_a_changed_file_without_the_others_is_an_error_naming_it(tmp_path: Path) -> None:
    con = connect()
    try:
        day = write([page({"userId": "u1"}, "/pricing", at(1), "p1")], tmp_path / "d.jsonl")
        score_stream_with_state(MODEL, str(day), None, cut(2), tmp_path / "state", con)
        other = write([page({"userId": "u2"}, "/pricing", at(2), "p2")],
                      tmp_path / "e.jsonl")
        score_stream_with_state(MODEL, str(other), None, cut(3), tmp_path / "state", con)
        write([page({"userId": "u1"}, "/about", at(1), "p1")], day)
        with pytest.raises(InputError, match=r"d\.jsonl: read by an earlier --state run and "
                           r"changed since.*e\.jsonl is missing"):
            score_stream_with_state(MODEL, str(day), None, cut(3), tmp_path / "state", con)
        table, report = score_stream_with_state(MODEL, str(tmp_path / "*.jsonl"), None,
                                                cut(3), tmp_path / "state", con)
    finally:
        con.close()
    assert report.reason == "the kept messages were read anew (a file read before changed)"
    assert_same_rows(rows_of(score_many(MODEL, str(tmp_path / "*.jsonl"), as_of=cut(3))),
                     rows_of(table))


def test_a_model_added_later_folds_the_whole_kept_history(tmp_path: Path) -> None:
    """The messages are kept once for the state folder: a model first run on day 2, given
    only day 2's file, still sees day 1 (its anonymous visit, merged on day 2)."""
    other = load_model("other.yaml", text=MODEL_TEXT.replace("name: stream-state",
                                                             "name: other"))
    a1 = {"anonymousId": "a1"}
    day1 = write([page(a1, "/pricing", at(1), "p1"), track(a1, "Demo Requested", at(2), "t1")],
                 tmp_path / "day1.jsonl")
    day2 = write([identify({"userId": "u1", **a1}, {"email": "e@example.org"}, at(6), "i1")],
                 tmp_path / "day2.jsonl")
    whole = write([*map(json.loads, day1.read_text().splitlines()),
                   *map(json.loads, day2.read_text().splitlines())], tmp_path / "whole.jsonl")
    con = connect()
    try:
        score_stream_with_state(MODEL, str(day1), None, cut(3), tmp_path / "state", con)
        got = {}
        for model in (MODEL, other):
            table, report = score_stream_with_state(model, str(day2), None, cut(8),
                                                    tmp_path / "state", con)
            got[model.name] = (rows_of(table), report)
    finally:
        con.close()
    assert got["stream-state"][1].mode == "incremental"
    assert got["other"][1].mode == "rebuild" and got["other"][1].reason == "no state yet"
    for model in (MODEL, other):
        assert_same_rows(rows_of(score_many(model, str(whole), as_of=cut(8))),
                         got[model.name][0])
    assert got["other"][0][("other", "u1")]["engagement"] > 0     # day 1's demo


def test_a_bad_message_in_a_day_file_is_skipped_with_a_warning(tmp_path: Path) -> None:
    day = write([page({"userId": "u1"}, "/pricing", at(1), "p1"),
                 {"type": "track", "userId": "u2", "messageId": "t1", "timestamp": at(1)}],
                tmp_path / "day.jsonl")       # a track without its event name
    con = connect()
    try:
        with pytest.warns(RejectedRowsWarning, match=r"day\.jsonl: 1 bad message row"):
            table, _ = score_stream_with_state(MODEL, str(day), None, cut(3),
                                               tmp_path / "state", con)
    finally:
        con.close()
    assert table.column("lead_id").to_pylist() == ["u1"]


# ---------------------------------------------------------------- the command


def test_the_cli_chains_state_runs_over_day_files(tmp_path: Path) -> None:
    model = tmp_path / "m.yaml"
    model.write_text(MODEL_TEXT)
    rng = random.Random(7)
    a = {"anonymousId": "a9"}
    messages = [page(a, "/pricing", at(d), f"p{d}") for d in range(1, 6)]
    messages += [identify({"userId": "u9", **a}, {"email": "x@example.org"}, at(7), "i1"),
                 {"type": "group", "userId": "u9", "groupId": "acme", "messageId": "g1",
                  "timestamp": at(7, 11), "traits": {"industry": "software"}},
                 track({"userId": "u9"}, "Vehicle Interest Submitted", at(8), "t1",
                       model="van")]
    rng.shuffle(messages)
    day1, day2 = write(messages[:4], tmp_path / "day1.jsonl"), \
        write(messages[4:], tmp_path / "day2.jsonl")
    whole = write(messages, tmp_path / "whole.jsonl")
    runner = CliRunner()

    def score(events: Path, out: Path, *more: str) -> str:
        result = runner.invoke(app, ["score", "--model", str(model), "--events", str(events),
                                     "--as-of", iso(cut(10)), "--out", str(out), *more])
        assert result.exit_code == 0, result.output
        return result.output

    score(day1, tmp_path / "s1.csv", "--state", str(tmp_path / "state"))
    said = score(day2, tmp_path / "s2.csv", "--state", str(tmp_path / "state"),
                 "--accounts", str(tmp_path / "a2.csv"))
    assert "incremental" in said
    score(whole, tmp_path / "one.csv", "--accounts", str(tmp_path / "a-one.csv"))
    assert _csv(tmp_path / "s2.csv") == _csv(tmp_path / "one.csv")
    assert _csv(tmp_path / "a2.csv", "account_id") == _csv(tmp_path / "a-one.csv", "account_id")
    assert [r["account_id"] for r in _csv(tmp_path / "a2.csv", "account_id")] == ["acme"]
    assert [r["lead_id"] for r in _csv(tmp_path / "s2.csv")] == ["u9"]
    refused = runner.invoke(app, ["score", "--model", str(model), "--events", str(day2),
                                  "--leads", str(day1), "--out", str(tmp_path / "x.csv"),
                                  "--state", str(tmp_path / "state")])
    assert refused.exit_code != 0 and "--leads" in refused.output


def _csv(path: Path, key: str = "lead_id") -> list[dict[str, str]]:
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:     # the sums' last digits differ by the order they were added in
        for name in ("engagement", "score"):
            row[name] = f"{float(row[name]):.9f}"
    return sorted(rows, key=lambda r: r[key])



# ---------------------------------------------------------------- filters (#15/#19)

FILTERS = Filters(ips=("203.0.113.0/24",), internal_domains=("shop.example",))
BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def sent_from(message: dict[str, Any], **context: str) -> dict[str, Any]:
    return {**message, "context": context}


def test_chained_runs_filter_bots_offices_and_a_lead_made_internal_late(
        tmp_path: Path) -> None:
    con = connect()
    try:
        filtered_chain(tmp_path, con)
    finally:
        con.close()


def filtered_chain(tmp_path: Path, con: Any) -> None:
    """Chained runs on `con` (DuckDB or Spark) over a stream with a bot, an office address
    and a lead made internal late, and back: each as one DuckDB run over the stream so far,
    its filtered-events warning too."""
    a1, u1, u2, u3 = ({"anonymousId": "a1"}, {"userId": "u1"}, {"userId": "u2"},
                      {"userId": "u3"})
    day1 = [page(u1, "/pricing", at(1), "p1"),
            sent_from(page(u1, "/pricing/team", at(1, 12), "p2"), userAgent=BOT),
            sent_from(track(u2, "Demo Requested", at(2), "t1"), ip="203.0.113.7"),
            track(u2, "Email Opened", at(2, 11), "t2"),
            identify(u3, {"email": "cy@example.org"}, at(2), "i1"),
            track(u3, "Demo Requested", at(3), "t3"),
            page(a1, "/pricing", at(3), "p3")]
    day2 = [page(u3, "/pricing", at(11), "p4"),
            identify({**u1, **a1}, {"email": "ann@example.org"}, at(11), "i2"),
            sent_from(track(u1, "Email Opened", at(12), "t4"), userAgent="curl/8.4.0")]
    day3 = [identify(u3, {"email": "cy@shop.example"}, at(21), "i3"),   # u3 is one of ours
            track(u1, "Email Opened", at(22), "t5")]
    day4 = [identify(u3, {"email": "cy@example.org"}, at(31), "i4"),    # and is no longer
            track(u2, "Email Opened", at(32), "t6")]
    so_far: list[dict[str, Any]] = []
    reports = []
    for n, (messages, as_of) in enumerate([(day1, cut(5)), (day2, cut(15)),
                                           (day3, cut(25)), (day4, cut(35))]):
        so_far += messages
        day = write(messages, tmp_path / f"day{n}.jsonl")
        whole = write(so_far, tmp_path / f"whole{n}.jsonl")
        (table, report), said = filtered_said(
            score_stream_with_state, MODEL, str(day), None, as_of, tmp_path / "state", con,
            filters=FILTERS)
        expected, whole_said = filtered_said(score_many, MODEL, str(whole), as_of=as_of,
                                             filters=FILTERS)
        assert_same_rows(rows_of(expected), rows_of(table))
        # the counts of every kept message, as one run over the whole stream says them
        assert [s.split(": ", 1)[1] for s in said] == \
            [s.split(": ", 1)[1] for s in whole_said] and len(said) == 1
        reports.append((report, rows_of(table), said[0]))
    (_, first, _), _, (third, at_three, said3), (fourth, at_four, said4) = reports
    assert first[("stream-state", "u2")]["engagement"] < 30     # the office's demo: none
    assert ("stream-state", "u3") not in at_three or \
        at_three[("stream-state", "u3")]["engagement"] == 0
    assert at_four[("stream-state", "u3")]["engagement"] > 0
    assert third.mode == fourth.mode == "incremental"
    assert third.late_leads >= 1 and fourth.late_leads >= 1     # u3 folded anew
    assert "internal_domains" in said3 and "internal_domains" not in said4
