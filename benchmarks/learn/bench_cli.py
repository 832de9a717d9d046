"""Time the `leadscore evaluate` and `leadscore learn` commands as a user runs them.

    python benchmarks/learn/bench_cli.py --size 10m      # or 50m; data from generate.py

Each command runs in a fresh process; recorded: wall s, CPU s (user + sys of the child), peak
RSS, the 1-minute load average before and after, and the command line — one JSON line per
command appended to benchmarks/learn/cli.jsonl. Outcomes: each lead's first `Order
Completed`. generate.py draws events independently, so the AUCs are near 0.5: this measures
time, not quality.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
DATA = HERE.parent / "data"


def run(name: str, argv: list[str], size: str) -> dict[str, object]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    record = {"command": name, "size": size, "argv": " ".join(argv), "wall_s": round(wall, 1),
              "cpu_s": round(after.ru_utime - before.ru_utime + after.ru_stime
                             - before.ru_stime, 1),
              "peak_rss_mb": round(after.ru_maxrss / 1024), "load_before": load,
              "load_after": os.getloadavg()[0], "returncode": done.returncode,
              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(done.stdout[-3000:], done.stderr[-2000:], file=sys.stderr)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="10m", help="10m or 50m (events-<size>.parquet)")
    parser.add_argument("--leads", default=str(DATA / "leads-1m.parquet"))
    parser.add_argument("--model", default=str(HERE.parent / "model-17.yaml"))
    parser.add_argument("--only", choices=["evaluate", "learn"], default=None)
    parser.add_argument("--extra", default="", help="more options for evaluate, e.g. "
                        "'--predictive'")
    parser.add_argument("--out", default="/tmp/leadscore-bench")
    args = parser.parse_args()
    events = str(DATA / f"events-{args.size}.parquet")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    common = ["--events", events, "--leads", args.leads, "--outcomes", "event:Order Completed"]
    commands = {
        "evaluate": ["leadscore", "evaluate", "--model", args.model, *common,
                     "--as-of", "2026-05-31T00:00:00Z", "--window-days", "30",
                     "--report", f"{args.out}/report.html", *args.extra.split()],
        "learn": ["leadscore", "learn", *common, "--as-of", "2026-04-01T00:00:00Z",
                  "--window-days", "30", "--out", f"{args.out}/learned.yaml"],
    }
    for name, argv in commands.items():
        if args.only and name != args.only:
            continue
        record = run(name, argv, args.size)
        print(json.dumps(record))
        with (HERE / "cli.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
