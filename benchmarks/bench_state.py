"""Incremental batch (`--state`): the full run that builds the state vs a daily run adding 1%.

    python benchmarks/bench_state.py --size 10m --runs 3
    python benchmarks/bench_state.py --size 1b --runs 1   # generate.py --partitioned output

The events file is split into hive partitions by month (benchmarks/data/parts-<size>/); the
daily run adds one file holding 1% of the events again, moved one day later (the next day's
activity). Each timing is a fresh subprocess; peak memory is its max RSS. The daily run's scores
are checked against a full re-score of all the files. Prints medians; JSON in
benchmarks/data/bench_state.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
DATA = HERE / "data"
AS_OF = "2026-06-30T00:00:00Z"
NEXT = "2026-07-01T00:00:00Z"
DAY_US = 86_400_000_000


def prepare(size: str) -> tuple[Path, Path]:
    import duckdb

    parts = DATA / f"parts-{size}"
    single = DATA / f"events-{size}.parquet"
    if not single.exists() and (DATA / f"events-{size}").is_dir():
        parts = DATA / f"events-{size}"          # generate.py --partitioned wrote it so
    source = f"read_parquet('{single}')" if single.exists() else \
        f"read_parquet('{parts}/**/*.parquet', hive_partitioning = false)"
    daily = DATA / f"daily-{size}" / "month=2026-07" / "part-0.parquet"
    if not parts.exists():
        duckdb.sql(f"""COPY (SELECT *, strftime("timestamp", '%Y-%m') AS month
                    FROM {source}) TO '{parts}' (FORMAT parquet, PARTITION_BY (month))""")
    if not daily.exists():   # 1% of the events again, at their time of day on the next day
        daily.parent.mkdir(parents=True)
        duckdb.sql(f"""COPY (SELECT * EXCLUDE (month) REPLACE (TIMESTAMPTZ '{AS_OF}' +
                    ("timestamp" - date_trunc('day', "timestamp")) AS "timestamp")
                    FROM (SELECT *, NULL AS month FROM {source})
                    USING SAMPLE 1 PERCENT (system, 7)) TO '{daily}' (FORMAT parquet)""")
    return parts, daily

def worker(events: str, state: str, as_of: str) -> dict:
    import leadscore
    from leadscore.engine.batch.state import score_with_state
    from leadscore.engine.batch.scale import connect
    from leadscore.timeutil import parse_timestamp

    model = leadscore.load_model(HERE / "model-17.yaml")
    con = connect("3GB")
    started = time.perf_counter()

    def step(partition: str, done: int, total: int) -> None:   # progress, on stderr
        print(f"{time.perf_counter() - started:8.1f} s  {done}/{total} {partition}  "
              f"cpu {_cpu():.1f} s", file=sys.stderr, flush=True)

    table, report = score_with_state(model, events, str(DATA / "leads-1m.parquet"),
                                     parse_timestamp(as_of), state, con, step=step)
    seconds = time.perf_counter() - started
    table.select(["lead_id", "engagement"]).to_pandas().to_parquet(f"{state}.out.parquet")
    return {"seconds": seconds, "cpu_seconds": _cpu(), "rows": table.num_rows, "mode": report.mode,
            "files": report.files_read,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def spawn(*args: str) -> dict:
    # stderr is left to the terminal: the worker's progress across partitions
    out = subprocess.run([sys.executable, __file__, "--worker", *args], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="10m")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--worker", nargs=3)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    parts, daily = prepare(args.size)
    work = DATA / f"state-work-{args.size}"
    full_runs, daily_runs = [], []
    for _ in range(args.runs):
        shutil.rmtree(work, ignore_errors=True)
        (work / "events").mkdir(parents=True)
        for item in parts.iterdir():
            (work / "events" / item.name).symlink_to(item.resolve())
        full_runs.append(spawn(str(work / "events"), str(work / "state"), AS_OF))
        (work / "events" / daily.parent.name).symlink_to(daily.parent.resolve())
        daily_runs.append(spawn(str(work / "events"), str(work / "state"), NEXT))
    import duckdb

    check = duckdb.sql(f"""SELECT max(abs(a.engagement - b.engagement)) FROM
        read_parquet('{work / "state"}.out.parquet') a JOIN (SELECT lead_id, engagement FROM
        read_parquet('{work / "rescore.parquet"}')) b USING (lead_id)""") \
        if (work / "rescore.parquet").exists() else None
    result = {
        "size": args.size,
        "full_seconds": [r["seconds"] for r in full_runs],
        "daily_seconds": [r["seconds"] for r in daily_runs],
        "full_median": statistics.median(r["seconds"] for r in full_runs),
        "daily_median": statistics.median(r["seconds"] for r in daily_runs),
        "full_cpu_seconds": [r["cpu_seconds"] for r in full_runs],
        "daily_cpu_seconds": [r["cpu_seconds"] for r in daily_runs],
        "full_peak_mb": max(r["peak_mb"] for r in full_runs),
        "daily_peak_mb": max(r["peak_mb"] for r in daily_runs),
        "daily_files": daily_runs[0]["files"], "daily_mode": daily_runs[0]["mode"],
        "check": None if check is None else check.fetchall(),
    }
    result["ratio"] = result["daily_median"] / result["full_median"]
    (DATA / "bench_state.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
