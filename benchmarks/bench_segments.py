"""Segment evaluation in batch against batch scoring, on the same data.

    python benchmarks/bench_segments.py                  # 1M events / 100k leads, 3 runs
    python benchmarks/bench_segments.py --size 10m --runs 3

`score`    `leadscore.engine.batch.score_many` (the model-17 benchmark model)
`segments` `leadscore.segments.batch.segment_many` with SEGMENTS below (score conditions,
           traits, `did` / `not_did` on events and pages with windows and counts,
           `in_segment`); it scores every lead itself, then counts behaviour in one pass.
Runs alternate (score, segments, score, …) in one process, after one warm-up of each; wall
time around the call. Goal (issue 7): segments within 1.5× of scoring. Results: a table on
stdout and JSON in benchmarks/data/bench_segments.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

HERE = Path(__file__).parent
DATA = HERE / "data"
AS_OF = "2026-06-30T00:00:00Z"
SIZES = {"1m": ("events-1m.parquet", "leads-100k.parquet"),
         "10m": ("events-10m.parquet", "leads-1m.parquet")}
SEGMENTS = """
name: hot prospects
model: bench-17
when:
  all:
    - {score.temperature: {in: [hot, warm]}}
    - {score.grade: {in: [A, B, C]}}
    - {did: {page: /pricing*, within_days: 30}}
---
name: webinar fans
model: bench-17
when:
  all:
    - {did: {event: Webinar Attended, within_days: 90, at_least: 2}}
    - {not_did: {event: Unsubscribed}}
---
name: big companies in trial
model: bench-17
when:
  all:
    - {employees: {gte: 200}}
    - {did: {event: Trial Started, within_days: 60}}
    - {not: {in_segment: hot prospects}}
---
name: gone quiet
model: bench-17
when:
  all:
    - {did: {event: Newsletter Subscribed}}
    - {not_did: {page: /*, within_days: 30}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="1m")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from leadscore.engine.batch import score_many
    from leadscore.model.loader import load_models
    from leadscore.segments import load_segments
    from leadscore.segments.batch import segment_many

    events, leads = (str(DATA / name) for name in SIZES[args.size])
    model = load_models([HERE / "model-17.yaml"])[0]
    folder = DATA / "segments-bench"
    folder.mkdir(exist_ok=True)
    for i, text in enumerate(SEGMENTS.strip().split("---\n")):
        (folder / f"s{i}.yaml").write_text(text)
    segments = load_segments([folder])

    def score() -> int:
        return score_many([model], events, leads, as_of=AS_OF).num_rows

    def members() -> int:
        return segment_many(segments, [model], events, leads, as_of=AS_OF).num_rows

    times: dict[str, list[float]] = {"score": [], "segments": []}
    rows: dict[str, int] = {}
    load = os.getloadavg()[0]
    for run in range(args.runs + 1):
        for name, call in (("score", score), ("segments", members)):
            start = time.perf_counter()
            rows[name] = call()
            elapsed = time.perf_counter() - start
            if run > 0:                      # the first round warms caches up
                times[name].append(elapsed)
            print(f"run {run} {name:<9} {elapsed:6.2f} s  ({rows[name]:,} rows)", flush=True)
    medians = {k: statistics.median(v) for k, v in times.items()}
    ratio = medians["segments"] / medians["score"]
    print(f"\n{args.size}: score {medians['score']:.2f} s, segments {medians['segments']:.2f} s"
          f" — {ratio:.2f}× (goal ≤ 1.5×); load average {load:.1f} → "
          f"{os.getloadavg()[0]:.1f}")
    out = DATA / "bench_segments.json"
    found = json.loads(out.read_text()) if out.exists() else {}
    found[args.size] = {"times": times, "medians": medians, "ratio": ratio, "rows": rows,
                        "segments": [s.name for s in segments],
                        "load": [load, os.getloadavg()[0]], "cpus": os.cpu_count(),
                        "python": platform.python_version(), "at": time.time()}
    out.write_text(json.dumps(found, indent=2))


if __name__ == "__main__":
    main()
