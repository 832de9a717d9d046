"""Incremental batch (`--state DIR`) beyond the generic checks (test_checks.py: a state built
from partitions, and daily runs from the saved state with late events, agree with `update_one`):
which buckets a rebuild closes, which files a daily run reads, and a property typed
differently by a later file."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from leadscore.engine.batch import connect, score_many
from leadscore.engine.batch.state import score_with_state
from leadscore.errors import FilteredEventsWarning
from leadscore.filters import Filters
from leadscore.model.schema import Model
from tests.engine.outputs import Rows, assert_same_rows, rows_of
from tests.engine.worlds import AS_OF, EVENT_SCHEMA

DAY = 86_400_000_000


def write(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, EVENT_SCHEMA), path)


def run(model: Model, folder: Path, leads: Path, as_of: int, state: Path) -> Rows:
    con = connect()
    try:
        table, _ = score_with_state(model, str(folder), str(leads), as_of, state, con)
    finally:
        con.close()
    return rows_of(table)


def full(model: Model, folder: Path, leads: Path, as_of: int) -> Rows:
    return rows_of(score_many(model, str(folder), str(leads), as_of=as_of))


def test_a_rebuild_closes_each_partitions_buckets_before_the_next(tmp_path: Path) -> None:
    """Month-like partitions: the buckets of a partition no later event can reach are summed up
    before the next one is folded, but a bucket an event of the next partition can still fall
    in — the same lead, rule and day — stays open (closed, it would count twice)."""
    model = Model.model_validate({"name": "m", "engagement": {
        "decay": {"half_life_days": 7}, "rules": [
            {"name": "pricing", "page": "/pricing*", "points": 5, "limit": "daily"}]}})
    hour = DAY // 24
    start = AS_OF // DAY * DAY - 30 * DAY      # a midnight (UTC, the model's time zone)

    def visit(lead: str, at: int) -> dict[str, Any]:
        return {"lead_id": lead, "timestamp": at, "type": "page", "path": "/pricing",
                "event": None, "topic": None, "value": None}

    # part 0: 20 days of visits; part 1 starts with the same lead the afternoon of its last
    # day (that day's bucket must stay open) and goes on for 9 days.
    write([visit(f"l{d % 3}", start + d * DAY + 10 * hour) for d in range(20)],
          tmp_path / "ev" / "part=0" / "part-0.parquet")
    write([visit(f"l{(d + 1) % 3}", start + 19 * DAY + 14 * hour + d * DAY)
           for d in range(10)],
          tmp_path / "ev" / "part=1" / "part-0.parquet")
    pq.write_table(pa.table({"lead_id": ["l0", "l1", "l2"]}), tmp_path / "leads.parquet")
    want = full(model, tmp_path / "ev", tmp_path / "leads.parquet", AS_OF)
    got = run(model, tmp_path / "ev", tmp_path / "leads.parquet", AS_OF, tmp_path / "state")
    assert_same_rows(want, got)


def test_a_daily_run_reads_only_the_new_files(tmp_path: Path) -> None:
    model = Model.model_validate({"name": "m", "engagement": {
        "decay": {"half_life_days": 7}, "rules": [
            {"name": "pricing", "page": "/pricing*", "points": 5, "limit": "daily"},
            {"name": "opens", "event": "Opened", "points": 1, "distinct": "properties.topic"},
            {"name": "clicks", "event": "Clicked", "points": 2, "cap": 10}]}})

    def rows(first: int, last: int, end: int) -> list[dict[str, Any]]:
        # events spread over the 20 days before `end`, the newest last
        return [{"lead_id": f"l{i % 7}", "timestamp": end - (last - i) * DAY // 10,
                 "type": "page" if i % 3 == 0 else "track",
                 "path": "/pricing" if i % 3 == 0 else None,
                 "event": None if i % 3 == 0 else ("Opened" if i % 2 else "Clicked"),
                 "topic": f"t{i % 4}", "value": None} for i in range(first, last)]

    write(rows(0, 200, AS_OF - DAY), tmp_path / "ev" / "day=1" / "part-0.parquet")
    pq.write_table(pa.table({"lead_id": ["l1", "x"]}), tmp_path / "leads.parquet")
    leads = str(tmp_path / "leads.parquet")
    con = connect()
    _, first = score_with_state(model, str(tmp_path / "ev"), leads, AS_OF - DAY,
                                tmp_path / "state", con)
    assert first.mode == "rebuild"
    write(rows(200, 210, AS_OF), tmp_path / "ev" / "day=2" / "part-0.parquet")
    table, second = score_with_state(model, str(tmp_path / "ev"), leads, AS_OF,
                                     tmp_path / "state", con)
    assert (second.mode, second.files_read, second.late_leads) == ("incremental", 1, 0)
    assert_same_rows(full(model, tmp_path / "ev", tmp_path / "leads.parquet", AS_OF),
                     rows_of(table))


def test_a_distinct_value_typed_differently_by_a_later_file_counts_once(tmp_path: Path) -> None:
    """A property typed by what each day's file holds: 5 (int64) one day, 5.0 (a float64
    column, as pandas writes an integer column with gaps) the next. A full re-score reads both
    as one DOUBLE column and counts one value; so must a run from the state."""
    model = Model.model_validate({"name": "m", "engagement": {"rules": [
        {"name": "plans", "event": "Viewed Plan", "points": 3, "distinct": "properties.plan"}]}})
    folder = tmp_path / "ev"
    pq.write_table(pa.table({"lead_id": ["l1"]}), tmp_path / "leads.parquet")
    leads = str(tmp_path / "leads.parquet")
    con = connect()
    try:
        for day, plan in ((1, pa.array([5], pa.int64())), (2, pa.array([5.0])),
                          (3, pa.array([5.5]))):
            at = AS_OF - (3 - day) * DAY          # a run per day, on that day's new file
            (folder / f"day={day}").mkdir(parents=True)
            pq.write_table(pa.table({
                "lead_id": ["l1"], "timestamp": pa.array([at - 1], pa.int64())
                .cast(pa.timestamp("us", "UTC")), "type": ["track"],
                "event": ["Viewed Plan"], "plan": plan}),
                folder / f"day={day}" / "part-0.parquet")
            table, report = score_with_state(model, str(folder), leads, at,
                                             tmp_path / "state", con)
            assert report.mode == ("rebuild" if day == 1 else "incremental")
            assert table.to_pylist()[0]["engagement"] == (3 if day < 3 else 6)
    finally:
        con.close()
    assert full(model, folder, tmp_path / "leads.parquet", AS_OF)[("m", "l1")]["engagement"] == 6


# ---------------------------------------------------------------- filters (#15/#19)

FILTERS = Filters(ips=("203.0.113.0/24",), internal_domains=("shop.example",))
BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"


def filtered_said(call: Any, *args: Any, **kwargs: Any) -> tuple[Any, list[str]]:
    """`call(*args, **kwargs)`'s result and the FilteredEventsWarnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call(*args, **kwargs)
    return result, [str(w.message) for w in caught
                    if issubclass(w.category, FilteredEventsWarning)]


def test_chained_runs_leave_out_bots_offices_and_internal_leads_as_one_run(
        tmp_path: Path) -> None:
    model = Model.model_validate({"name": "m", "engagement": {
        "decay": {"half_life_days": 7}, "rules": [
            {"name": "pricing", "page": "/pricing*", "points": 5, "limit": "daily"},
            {"name": "clicks", "event": "Clicked", "points": 2, "cap": 10}]}})
    schema = pa.schema([("lead_id", pa.string()), ("timestamp", pa.timestamp("us", "UTC")),
                        ("type", pa.string()), ("event", pa.string()), ("path", pa.string()),
                        ("user_agent", pa.string()), ("ip", pa.string())])

    def rows(first: int, last: int, end: int) -> list[dict[str, Any]]:
        return [{"lead_id": f"l{i % 5}", "timestamp": end - (last - i) * DAY // 10,
                 "type": "page" if i % 2 else "track", "path": "/pricing" if i % 2 else None,
                 "event": None if i % 2 else "Clicked",
                 "user_agent": BOT if i % 7 == 0 else BROWSER,
                 "ip": "203.0.113.9" if i % 11 == 0 else "198.51.100.4"}
                for i in range(first, last)]

    events = tmp_path / "ev"
    leads = tmp_path / "leads.parquet"
    days = [(rows(0, 60, AS_OF - 2 * DAY), ["a@example.org", "b@example.org"]),
            (rows(60, 80, AS_OF - DAY), ["a@example.org", "b@example.org"]),
            (rows(80, 90, AS_OF), ["a@example.org", "b@shop.example"]),  # l1 turns internal
            (rows(90, 95, AS_OF + DAY), ["a@shop.example", "b@example.org"])]
    modes = []
    con = connect()
    try:
        for n, (day, emails) in enumerate(days):
            events.joinpath(f"day={n}").mkdir(parents=True)
            pq.write_table(pa.Table.from_pylist(day, schema),
                           events / f"day={n}" / "part-0.parquet")
            pq.write_table(pa.table({"lead_id": ["l0", "l1"], "email": emails}), leads)
            as_of = AS_OF + (n - 2) * DAY
            (table, report), said = filtered_said(
                score_with_state, model, str(events), str(leads), as_of, tmp_path / "state",
                con, filters=FILTERS)
            whole, whole_said = filtered_said(score_many, model, str(events), str(leads),
                                              as_of=as_of, filters=FILTERS)
            assert_same_rows(rows_of(whole), rows_of(table))
            assert said == whole_said and len(said) == 1
            modes.append(report.mode)
    finally:
        con.close()
    # the leads table caught other leads on days 2 and 3: rebuilt
    assert modes == ["rebuild", "incremental", "rebuild", "rebuild"]
    assert "bots" in said[0] and "ips" in said[0] and "internal_domains" in said[0]
