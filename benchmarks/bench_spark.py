"""The same plan on Spark `local[2]` and on DuckDB, and the hand-written PySpark DataFrame job
of the same model (`spark_baseline.py`), side by side (fresh subprocess per run).

    python benchmarks/bench_spark.py --sizes 10m --runs 3
    python benchmarks/bench_spark.py --sizes 10m --runs 1 --engines handwritten spark

Spark's time is split into session start-up, reading/registering the inputs (incl. the
rejected-row counts) and the plan itself (collected to Arrow). Scores must agree per lead
(engagement within 1e-6) before anything is reported. JSON in benchmarks/data/bench_spark.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
DATA = HERE / "data"
AS_OF = "2026-06-30T00:00:00Z"
LEADS = {"1m": "leads-100k.parquet", "10m": "leads-1m.parquet", "50m": "leads-1m.parquet"}


def worker(engine: str, size: str) -> dict:
    import leadscore
    from leadscore.timeutil import parse_timestamp

    model = leadscore.load_model(HERE / "model-17.yaml")
    events, leads = str(DATA / f"events-{size}.parquet"), str(DATA / LEADS[size])
    out: dict = {}
    started = time.perf_counter()
    if engine == "duckdb":
        table = leadscore.score_many([model], events, leads, as_of=AS_OF)
    elif engine == "handwritten":
        from spark_baseline import score

        from leadscore.engine.batch import spark as on_spark

        session = on_spark.session("local[2]", **{"spark.driver.memory": "3g"})
        session.sparkContext.setLogLevel("ERROR")
        out["startup"] = time.perf_counter() - started
        t = time.perf_counter()
        frame = score(model, session.read.parquet(events), session.read.parquet(leads),
                      parse_timestamp(AS_OF))
        out["read"] = time.perf_counter() - t
        t = time.perf_counter()
        table = frame.toArrow()
        out["plan"] = time.perf_counter() - t
    else:
        from leadscore.engine.batch import spark as on_spark

        session = on_spark.session("local[2]", **{"spark.driver.memory": "3g"})
        session.sparkContext.setLogLevel("ERROR")
        out["startup"] = time.perf_counter() - started
        with on_spark.settings(session):
            t = time.perf_counter()
            frame, _, _ = on_spark.score_frame([model], events, leads,
                                               as_of_us=parse_timestamp(AS_OF), spark=session)
            out["read"] = time.perf_counter() - t
            t = time.perf_counter()
            table = on_spark.to_arrow(frame)
            out["plan"] = time.perf_counter() - t
    out["seconds"] = time.perf_counter() - started
    out["rows"] = table.num_rows
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["peak_children_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["cpu_driver"] = usage.ru_utime + usage.ru_stime
    if engine != "duckdb":    # the JVM's CPU time (a child the worker does not wait for)
        out["cpu_jvm"] = _jvm_cpu()
    table.select(["lead_id", "engagement"]).to_pandas().to_parquet(
        DATA / f"out-{engine}-{size}.parquet")
    return out


def _jvm_cpu() -> float:
    """CPU seconds (user + system) of this process' descendants (the JVM) so far, /proc."""
    import os

    ticks = os.sysconf("SC_CLK_TCK")
    stats = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        stats[pid] = text.rsplit(")", 1)[1].split()
    mine, total, grew = {str(os.getpid())}, 0.0, True
    while grew:
        more = {pid for pid, f in stats.items() if f[1] in mine} - mine
        grew = bool(more)
        mine |= more
    for pid in mine - {str(os.getpid())}:   # utime, stime: fields 14 and 15 of stat
        total += (int(stats[pid][11]) + int(stats[pid][12])) / ticks
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="+", default=["10m"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engines", nargs="+", default=["duckdb", "spark"])
    parser.add_argument("--worker", nargs=2)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    import duckdb

    results = {}
    first, second = args.engines
    for size in args.sizes:
        runs: dict[str, list[dict]] = {engine: [] for engine in args.engines}
        for _ in range(args.runs):
            for engine in runs:   # interleaved: both see the same machine load
                out = subprocess.run([sys.executable, __file__, "--worker", engine, size],
                                     check=True, capture_output=True, text=True).stdout
                runs[engine].append(json.loads(out.strip().splitlines()[-1]))
        [(worst,)] = duckdb.sql(f"""SELECT max(abs(a.engagement - b.engagement)) FROM
            read_parquet('{DATA / f"out-{first}-{size}.parquet"}') a JOIN
            read_parquet('{DATA / f"out-{second}-{size}.parquet"}') b USING (lead_id)""").fetchall()
        assert worst is not None and worst < 1e-6, worst
        results[size] = {engine: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
                         for engine, rs in runs.items()}
        results[size]["ratio"] = results[size][second]["seconds"] / \
            results[size][first]["seconds"]
    name = "bench_spark.json" if args.engines == ["duckdb", "spark"] else \
        f"bench_spark-{first}-{second}.json"
    (DATA / name).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
