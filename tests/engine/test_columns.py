"""The column helpers of the vectorised fold give what the per-event code gives."""

from __future__ import annotations

import random

import numpy as np

from leadscore.engine.incremental.fold_many.columns import (
    encode,
    encode_strings,
    holds,
    local_days,
    run_rank,
    scan,
)
from leadscore.events import Event
from leadscore.model import conditions as cond
from leadscore.timeutil import local_day, parse_timestamp


def test_encode_numbers_values_in_order_of_appearance() -> None:
    values, numbers = encode(["b", None, "a", "b", None])
    assert values == ["b", None, "a"] and numbers.tolist() == [0, 1, 2, 0, 1]
    strings, numbers = encode_strings(["x", "y", "x"])
    assert strings == ["x", "y"] and numbers.tolist() == [0, 1, 0]
    assert encode_strings([1, "1"])[1].tolist() == [0, 1]     # not strings: by dict


def test_scan_stays_within_runs() -> None:
    rng = random.Random(3)
    keys = np.array(sorted(rng.randrange(20) for _ in range(500)))
    values = np.array([rng.randrange(1000) for _ in range(500)])
    rank = run_rank(keys)
    got_max, got_sum = scan(values, rank, np.maximum), scan(values, rank, np.add)
    for i in range(500):
        run = [int(values[j]) for j in range(i - int(rank[i]), i + 1)]
        assert keys[i - int(rank[i])] == keys[i]
        assert (got_max[i], got_sum[i]) == (max(run), sum(run))


def test_local_days_match_local_day_across_a_dst_change() -> None:
    start = parse_timestamp("2026-03-28T20:00:00Z")
    times = np.array([start + i * 97_000_000 for i in range(3000)], np.int64)   # ~3.4 days
    for tz in ("UTC", "Europe/Berlin", "Asia/Kolkata", "America/St_Johns"):
        assert local_days(times, tz).tolist() == [local_day(int(t), tz) for t in times]


def test_holds_is_evaluated_per_value_and_type() -> None:
    where = cond.parse({"any": [{"properties.v": {"eq": 1}},
                                {"properties.t": {"exists": True}}]}, scope="event")
    events = [Event("a", 1, "track", "x", None, {"v": v, **({"t": 0} if i == 5 else {})})
              for i, v in enumerate([1, True, 1.0, None, "1", 2, [1]])]
    got = holds(where, events, np.arange(len(events))).tolist()
    assert got == [cond.evaluate(where, e.get) for e in events]
    assert got[:2] == [True, False]      # 1 and True: one dict key, not one value
