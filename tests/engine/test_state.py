"""Incremental batch (`--state DIR`): a run that folds new files into the saved state gives
exactly the scores of a full re-score, for any model and any split of the events into files —
late events included (folded, or their leads recomputed), interests and program events too."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadscore.engine.batch import connect, score_many
from leadscore.engine.batch.state import score_with_state
from leadscore.model.schema import Model
from tests.engine.test_agreement import (
    AS_OF,
    EVENT_SCHEMA,
    LEAD_SCHEMA,
    as_us,
    assert_agree,
    models,
    worlds,
)

DAY = 86_400_000_000


def write(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, EVENT_SCHEMA), path)


def run(model: Model, folder: Path, leads: Path, as_of: int, state: Path) -> dict[str, Any]:
    con = connect()
    try:
        table, _ = score_with_state(model, str(folder), str(leads), as_of, state, con)
    finally:
        con.close()
    return {row["lead_id"]: row for row in table.to_pylist()}


def full(model: Model, folder: Path, leads: Path, as_of: int) -> dict[str, Any]:
    table = score_many(model, str(folder), str(leads), as_of=as_of)
    return {row["lead_id"]: {k: as_us(v) if k in ("as_of", "customer_since") else v
                             for k, v in row.items()} for row in table.to_pylist()}


@settings(max_examples=int(os.environ.get("LEADSCORE_STATE_EXAMPLES", "25")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(model=models(), world=worlds(), data=st.data())
def test_runs_from_the_state_equal_a_full_rescore(model: Model, world: Any,
                                                   data: st.DataObject) -> None:
    leads, events = world
    # Each event lands in the first, second or third day's file, whatever its time: the later
    # files hold late events too.
    days = [data.draw(st.integers(0, 2)) for _ in events]
    first_as_of = AS_OF - data.draw(st.integers(0, 10)) * DAY // 2
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pq.write_table(pa.Table.from_pylist(leads, LEAD_SCHEMA), root / "leads.parquet")
        state = root / "state"
        for day, as_of in enumerate((first_as_of, AS_OF, AS_OF + DAY)):
            write([e for e, d in zip(events, days, strict=True) if d == day],
                  root / "events" / f"day={day}" / "part-0.parquet")
            got = run(model, root / "events", root / "leads.parquet", as_of, state)
            want = full(model, root / "events", root / "leads.parquet", as_of)
            assert_agree(want, got)
        # A state built from scratch over the three partitions (each closing the buckets no
        # later partition's event can reach) gives the same.
        assert_agree(want, run(model, root / "events", root / "leads.parquet", AS_OF + DAY,
                               root / "rebuilt"))



@settings(max_examples=int(os.environ.get("LEADSCORE_STATE_EXAMPLES", "25")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(model=models(), world=worlds(), data=st.data())
def test_a_state_built_from_partitions_in_time_order_equals_a_full_rescore(
        model: Model, world: Any, data: st.DataObject) -> None:
    # Partitions as `month=…` folders are: each holds a later stretch of time than the one
    # before, so the rebuild closes the buckets of each before folding the next.
    leads, events = world
    ordered = sorted(events, key=lambda e: e["timestamp"])
    cuts = sorted(data.draw(st.lists(st.integers(0, len(ordered)), min_size=1, max_size=4)))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pq.write_table(pa.Table.from_pylist(leads, LEAD_SCHEMA), root / "leads.parquet")
        for number, (start, end) in enumerate(zip([0, *cuts], [*cuts, len(ordered)],
                                                  strict=True)):
            write(ordered[start:end], root / "events" / f"part={number}" / "part-0.parquet")
        as_of = AS_OF - data.draw(st.integers(0, 10)) * DAY // 2
        assert_agree(full(model, root / "events", root / "leads.parquet", as_of),
                     run(model, root / "events", root / "leads.parquet", as_of, root / "s"))


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
    assert_agree(want, got)

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
    got = {r["lead_id"]: r for r in table.to_pylist()}
    want = full(model, tmp_path / "ev", tmp_path / "leads.parquet", AS_OF)
    assert got.keys() == want.keys()
    for lead_id, row in want.items():
        assert abs(got[lead_id]["engagement"] - row["engagement"]) < 1e-9


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
    assert full(model, folder, tmp_path / "leads.parquet", AS_OF)["l1"]["engagement"] == 6
