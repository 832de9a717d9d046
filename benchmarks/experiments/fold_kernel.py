"""Experiment: the batch plan's per-lead aggregate (`agg`) computed by a purpose-built compiled
fold instead of DuckDB's GROUP BYs, timed side by side with the plan's own `ev` + `agg`.

    pip install numba          # not a leadscore dependency: this is a measurement only
    python benchmarks/experiments/fold_kernel.py [--size 10m] [--runs 3]

Issue #2 asks for batch scoring within 1.3× of DuckDB's floor (read the columns, group by
lead). The SQL plan is ~4× that; this script measures how far a different execution approach
gets, so that the choice is made on figures. Not used by `score_many`.

How it works, for models without lifecycle event rules or program points (checked):
  1. DuckDB scans the events once (the plan's own `ev` query, rule masks computed in the scan)
     and hands over per event: the lead key (64-bit hash of lead_id), ts, a bit per matching
     rule (its `where` included), a 63-bit hash of each `distinct` value.
  2. A parallel radix scatter by the lead key's top 8 bits (256 partitions, each thread its
     half of the events), so that each partition's hash tables stay in cache.
  3. Per partition (threads in parallel): lead key → slot (open addressing), then one pass over
     the events: `once` rules a MAX of ts, every-event rules a decayed sum, bucketed rules
     (`daily`/`weekly`/`distinct`) a MAX of ts per (lead, rule, bucket, value) in a second hash
     table, summed decayed at the end. Sums are fixed-point integers (10^-12), exact in any
     order like the plan's DECIMAL sums.

It checks that every lead's aggregates equal the plan's (within 1e-9) before printing times.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit, prange
from sqlglot import exp

import leadscore
from leadscore.engine.batch import connect
from leadscore.engine.batch.inputs import table_columns as _table_columns
from leadscore.engine.sql.plan import PlanOptions, compile_plan
from leadscore.engine.sql.semantics import DAY_SHIFT
from leadscore.engine.sql.signatures import Signatures
from leadscore.io.readers import read_events
from leadscore.model.compiled import compile_model
from leadscore.timeutil import ISO_WEEK_SHIFT_DAYS, US_PER_DAY, parse_timestamp

HERE = Path(__file__).resolve().parent.parent
AS_OF = "2026-06-30T00:00:00Z"
EACH, EACH_CAPPED, LATEST, BUCKETED = 0, 1, 2, 3        # how a rule aggregates
NO_BUCKET, DAY, WEEK = 0, 1, 2
SCALE = 1e12                                            # fixed point: DECIMAL(18, 12)
PARTITION_BITS = 8


@njit(cache=True, inline="always")
def _mix(x):
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    return x


@njit(parallel=True, cache=True)
def scatter(k, ts, mask, dv, pbits, threads):
    """The events reordered by partition (top `pbits` bits of k); each thread scatters its part."""
    n = k.shape[0]
    parts = 1 << pbits
    shift = np.uint64(64 - pbits)
    hist = np.zeros((threads, parts), np.int64)
    step = (n + threads - 1) // threads
    for t in prange(threads):
        for i in range(t * step, min(n, (t + 1) * step)):
            hist[t, np.int64(k[i] >> shift)] += 1
    starts = np.zeros(parts + 1, np.int64)
    pos = np.zeros((threads, parts), np.int64)
    acc = 0
    for p in range(parts):
        starts[p] = acc
        for t in range(threads):
            pos[t, p] = acc
            acc += hist[t, p]
    starts[parts] = acc
    d = dv.shape[0]
    k2 = np.empty(n, np.uint64)
    ts2 = np.empty(n, np.int64)
    m2 = np.empty(n, np.int64)
    dv2 = np.empty((d, n), np.int64)
    for t in prange(threads):
        mine = pos[t].copy()
        for i in range(t * step, min(n, (t + 1) * step)):
            p = np.int64(k[i] >> shift)
            j = mine[p]
            mine[p] = j + 1
            k2[j] = k[i]
            ts2[j] = ts[i]
            m2[j] = mask[i]
            for c in range(d):
                dv2[c, j] = dv[c, i]
    return starts, k2, ts2, m2, dv2


@njit(cache=True)
def _slots(k, lo, hi, slot, lead_k):
    """Lead key → slot for one partition (a growing open-addressing table)."""
    size = 1024
    keys = np.empty(size, np.uint64)
    slot_of = np.full(size, -1, np.int64)
    used = 0
    for j in range(lo, hi):
        key = k[j]
        h = _mix(key) & np.uint64(size - 1)
        while True:
            s = slot_of[h]
            if s < 0:
                s = used
                keys[h] = key
                slot_of[h] = s
                lead_k[lo + s] = key
                used += 1
                if 2 * used > size:
                    size *= 2
                    new_keys = np.empty(size, np.uint64)
                    new_slots = np.full(size, -1, np.int64)
                    for q in range(size // 2):
                        if slot_of[q] >= 0:
                            g = _mix(keys[q]) & np.uint64(size - 1)
                            while new_slots[g] >= 0:
                                g = (g + np.uint64(1)) & np.uint64(size - 1)
                            new_keys[g] = keys[q]
                            new_slots[g] = slot_of[q]
                    keys, slot_of = new_keys, new_slots
                break
            if keys[h] == key:
                break
            h = (h + np.uint64(1)) & np.uint64(size - 1)
        slot[j] = s
    return used


@njit(parallel=True, cache=True)
def assign(k, starts):
    parts = starts.shape[0] - 1
    slot = np.empty(k.shape[0], np.int32)
    lead_k = np.empty(k.shape[0], np.uint64)
    count = np.zeros(parts, np.int64)
    for p in prange(parts):
        count[p] = _slots(k, starts[p], starts[p + 1], slot, lead_k)
    return slot, lead_k, count


@njit(cache=True)
def _fold(ts, mask, dv, slot, lo, hi, base, bits, kind, bucket, dcol, half_life, points, out,
          as_of, fixed, latest):
    rules = bits.shape[0]
    wanted = 0
    for j in range(lo, hi):
        for r in range(rules):
            if kind[r] == BUCKETED and mask[j] & bits[r] != 0:
                wanted += 1
    size = 16
    while size < 2 * wanted:
        size <<= 1
    cut = np.uint64(size - 1)
    b_slot = np.full(size, -1, np.int64)
    b_rule = np.empty(size, np.int64)
    b_one = np.empty(size, np.int64)
    b_two = np.empty(size, np.int64)
    b_ts = np.empty(size, np.int64)
    filled = np.empty(wanted, np.int64)
    n_filled = 0
    shift = np.int64(DAY_SHIFT * US_PER_DAY)
    for j in range(lo, hi):
        m = mask[j]
        if m == 0:
            continue
        s = base + slot[j]
        t = ts[j]
        for r in range(rules):
            if m & bits[r] == 0:
                continue
            how = kind[r]
            if how == LATEST:
                if t > latest[s, out[r]]:
                    latest[s, out[r]] = t
            elif how != BUCKETED:
                w = points[r]
                if half_life[r] > 0.0:
                    w = w * math.pow(2.0, (t - as_of) / half_life[r])
                fixed[s, out[r]] += np.int64(round(w * SCALE))
            else:
                one = np.int64(0)
                if bucket[r] == DAY:
                    one = (t + shift) // np.int64(US_PER_DAY)
                elif bucket[r] == WEEK:
                    one = ((t + shift) // np.int64(US_PER_DAY) + ISO_WEEK_SHIFT_DAYS) // 7
                two = np.int64(0)
                if dcol[r] >= 0:
                    two = dv[dcol[r], j]
                h = _mix(np.uint64(s) * np.uint64(0x9E3779B97F4A7C15)
                         + np.uint64(r) * np.uint64(1000003)
                         + np.uint64(one) * np.uint64(0xC2B2AE3D27D4EB4F)
                         + np.uint64(two)) & cut
                while True:
                    if b_slot[h] < 0:
                        b_slot[h] = s
                        b_rule[h] = r
                        b_one[h] = one
                        b_two[h] = two
                        b_ts[h] = t
                        filled[n_filled] = h
                        n_filled += 1
                        break
                    if b_slot[h] == s and b_rule[h] == r and b_one[h] == one and b_two[h] == two:
                        if t > b_ts[h]:
                            b_ts[h] = t
                        break
                    h = (h + np.uint64(1)) & cut
    for u in range(n_filled):
        h = filled[u]
        r = b_rule[h]
        w = points[r]
        if half_life[r] > 0.0:
            w = w * math.pow(2.0, (b_ts[h] - as_of) / half_life[r])
        fixed[b_slot[h], out[r]] += np.int64(round(w * SCALE))


@njit(parallel=True, cache=True)
def fold(ts, mask, dv, starts, slot, count, bits, kind, bucket, dcol, half_life, points, out,
         as_of, n_fixed, n_latest):
    parts = starts.shape[0] - 1
    base = np.zeros(parts + 1, np.int64)
    for p in range(parts):
        base[p + 1] = base[p] + count[p]
    fixed = np.zeros((base[parts], n_fixed), np.int64)
    latest = np.full((base[parts], n_latest), np.iinfo(np.int64).min, np.int64)
    for p in prange(parts):
        _fold(ts, mask, dv, slot, starts[p], starts[p + 1], base[p], bits, kind, bucket, dcol,
              half_life, points, out, as_of, fixed, latest)
    return base, fixed, latest


def rule_table(compiled):
    """Per rule: bit, kind, bucket, distinct column, half-life (µs), points, output column;
    and the plan's `agg` column each output column corresponds to."""
    distinct = sorted({r.distinct for r in compiled.rules if r.distinct is not None})
    rows, fixed_names, latest_names = [], ["v"], []
    for r in compiled.rules:
        if not r.bucketed:
            kind = EACH if r.cap is None else EACH_CAPPED
        elif r.limit == "once" and r.distinct is None:
            kind = LATEST
        else:
            kind = BUCKETED
        if kind == LATEST:
            out = len(latest_names)
            latest_names.append(f"o{r.index}")
        elif kind == EACH:
            out = 0
        else:
            out = len(fixed_names)
            fixed_names.append(f"c{r.index}" if kind == EACH_CAPPED else f"g{r.index}")
        bucket = {"daily": DAY, "weekly": WEEK}.get(r.limit or "", NO_BUCKET)
        rows.append((1 << r.index, kind, bucket,
                     distinct.index(r.distinct) if r.distinct is not None else -1,
                     (r.half_life_days or 0.0) * US_PER_DAY, float(r.points), out))
    arrays = [np.array([row[i] for row in rows], dtype) for i, dtype in enumerate(
        (np.int64, np.int64, np.int64, np.int64, np.float64, np.float64, np.int64))]
    return arrays, distinct, fixed_names, latest_names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="10m")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", type=Path, default=HERE / "model-17.yaml")
    args = parser.parse_args(argv)
    compiled = compile_model(leadscore.load_model(args.model))
    if compiled.stages or compiled.timezone != "UTC" or len(compiled.rules) > 62:
        raise SystemExit("the experiment covers models without lifecycle rules, in UTC, "
                         "with at most 62 engagement rules")
    as_of = parse_timestamp(AS_OF)
    con = connect()
    read_events(str(HERE / f"data/events-{args.size}.parquet"), con, name="events")
    columns = _table_columns(con, "events")
    plan = compile_plan(compiled, columns, None, as_of,
                        options=PlanOptions(events_table="events", leads_table=None,
                                            lead_key="hash", order=False))
    ctes = {cte.alias: cte.this for cte in plan.args["with_"].expressions}
    ev_sql = ctes["ev"].sql(dialect="duckdb")
    agg_sql = ctes["agg"].sql(dialect="duckdb")
    signatures = Signatures([(f"m{r.index}", r.matcher) for r in compiled.rules], columns)
    (bits, kind, bucket, dcol, half_life, points, out), distinct, fixed_names, latest_names = \
        rule_table(compiled)
    mask = " + ".join(f"CASE WHEN {signatures.flag(f'm{r.index}').sql(dialect='duckdb')} "
                      f"THEN {1 << r.index} ELSE 0 END" for r in compiled.rules)
    values = [f'COALESCE((hash({exp.column(c, quoted=True).sql()}) >> 1)::BIGINT, 0) AS "d{i}"'
              for i, c in enumerate(distinct)] or ["0 AS d0"]
    scan = f"SELECT k, ts, {mask} AS m, {', '.join(values)} FROM ({ev_sql})"

    steps: dict[str, list[float]] = {}

    def kernel():
        clock = [time.perf_counter()]

        def step(name: str) -> None:
            clock.append(time.perf_counter())
            steps.setdefault(name, []).append(clock[-1] - clock[-2])

        table = con.sql(scan).to_arrow_table()
        step("scan (DuckDB)")
        column = lambda name: table.column(name).combine_chunks().to_numpy()  # noqa: E731
        k = column("k").astype(np.uint64, copy=False)
        dv = np.stack([column(f"d{i}") for i in range(max(1, len(distinct)))])
        ts, m = column("ts"), column("m")
        step("to numpy")
        starts, k, ts, m, dv = scatter(k, ts, m, dv, PARTITION_BITS, 2)
        step("scatter")
        slot, lead_k, count = assign(k, starts)
        step("lead slots")
        _, fixed, latest = fold(ts, m, dv, starts, slot, count, bits, kind, bucket, dcol,
                                half_life, points, out, as_of, len(fixed_names),
                                len(latest_names))
        step("fold")
        keys = np.concatenate([lead_k[starts[p]:starts[p] + count[p]]
                               for p in range(len(count))])
        return keys, fixed, latest

    def plan_agg():
        con.sql(f"CREATE OR REPLACE TEMP TABLE ev AS {ev_sql}")
        result = con.sql(agg_sql).to_arrow_table()
        con.sql("DROP TABLE ev")
        return result

    kernel()    # compiles the kernels once (numba caches them next to this file)
    keys, fixed, latest = kernel()
    expected = plan_agg()
    order = np.argsort(keys)
    want_keys = expected.column("k").to_numpy().astype(np.uint64)
    want = np.argsort(want_keys)
    if not np.array_equal(keys[order], want_keys[want]):
        raise SystemExit("the kernel found other leads than the plan")
    worst = 0.0
    for i, name in enumerate(fixed_names):
        got = fixed[order, i] / SCALE
        plan_values = expected.column(name).to_numpy(zero_copy_only=False)[want]
        worst = max(worst, float(np.nanmax(np.abs(got - np.nan_to_num(
            plan_values.astype(float))))))
    for i, name in enumerate(latest_names):
        got = latest[order, i]
        plan_values = expected.column(name).to_pandas().fillna(np.iinfo(np.int64).min)
        if not np.array_equal(got, plan_values.to_numpy(dtype=np.int64)[want]):
            raise SystemExit(f"{name}: the kernel's latest times differ from the plan's")
    if worst > 1e-9:
        raise SystemExit(f"the kernel's sums differ from the plan's by {worst}")
    print(f"{len(keys):,} leads: the kernel's aggregates equal the plan's (sums within "
          f"{worst:.1e})")
    times: dict[str, list[float]] = {"plan (ev + agg)": [], "kernel": []}
    for _ in range(args.runs):
        for label, run in (("plan (ev + agg)", plan_agg), ("kernel", kernel)):
            started = time.perf_counter()
            run()
            times[label].append(time.perf_counter() - started)
    for label, runs in times.items():
        print(f"  {label:16s} median {statistics.median(runs):5.2f} s   runs "
              + " ".join(f"{t:.2f}" for t in runs))
    print("  kernel steps (median s): " + ", ".join(
        f"{name} {statistics.median(runs[-args.runs:]):.2f}" for name, runs in steps.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
