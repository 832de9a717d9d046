"""Where the stream stage's time goes on DuckDB: each statement of `run_stream` timed (CPU and
wall), and DuckDB's per-operator profile of the slowest ones.

    python benchmarks/profile_stream.py [--size 1m] [--operators 8]

Reads `messages-<size>.parquet` (the parsed stream `bench_stream_json.py` writes) into a
table, then stages it as of the benchmark's AS_OF. A diagnostic for the stage's authors, not a
benchmark: `bench_stream_json.py` and `bench_stream.py` give the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import leadscore.engine.batch.stream as stream
from leadscore.engine.batch import connect
from leadscore.timeutil import parse_timestamp

HERE = Path(__file__).parent
AS_OF = "2026-06-30T00:00:00Z"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _operators(node: dict, out: list) -> None:
    name = node.get("operator_name") or node.get("name") or node.get("operator_type")
    timing = node.get("operator_timing", node.get("timing"))
    if timing is not None:
        rows = node.get("operator_cardinality", node.get("intermediate_rows"))
        out.append((float(timing), str(name).strip(), rows,
                    json.dumps(node.get("extra_info") or {})[:100]))
    for child in node.get("children", []):
        _operators(child, out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1m")
    parser.add_argument("--operators", type=int, default=8)
    args = parser.parse_args()
    con = connect()
    source = HERE / "data" / f"messages-{args.size}.parquet"
    con.sql(f"CREATE TEMP TABLE messages AS SELECT * FROM read_parquet('{source}')")
    steps: list[tuple[str, float, float, list]] = []
    plain = stream.create
    profile = HERE / "data" / "profile-stream.json"

    def timed(con_: object, name: str, sql: str) -> None:
        con.sql("PRAGMA enable_profiling = 'json'")
        con.sql(f"PRAGMA profiling_output = '{profile}'")
        wall, cpu = time.perf_counter(), _cpu()
        plain(con, name, sql)
        wall, cpu = time.perf_counter() - wall, _cpu() - cpu
        con.sql("PRAGMA disable_profiling")
        ops: list = []
        if profile.exists():
            data = json.loads(profile.read_text())
            for root in data.get("operator", [data]):
                _operators(root, ops)
        steps.append((name.split("_")[-2] if name.endswith(tuple("0123456789")) else name,
                      wall, cpu, sorted(ops, reverse=True)[:args.operators]))

    stream.create = timed  # type: ignore[assignment]
    wall, cpu = time.perf_counter(), _cpu()
    made = stream.run_stream(con, "messages", parse_timestamp(AS_OF))
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    load = os.getloadavg()[0]
    print(f"stream stage, {args.size}: {wall:.2f} s wall, {cpu:.2f} CPU s (load {load:.1f})")
    for name, w, c, ops in steps:
        print(f"  {name:<10} {w:6.2f} s  {c:6.2f} CPU s")
        for seconds, op, rows, extra in ops:
            print(f"      {seconds:6.3f} {op:<22} {rows!s:>10}  {extra}")
    [(n,)] = con.sql(f"SELECT count(*) FROM {made.events}").fetchall()
    print(f"  events {n:,}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
