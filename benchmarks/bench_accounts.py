"""The service's cost of one event for a lead in a B2B account, by account size.

    python benchmarks/bench_accounts.py                      # 100, 500, 2,000 and 5,000 leads
    python benchmarks/bench_accounts.py --sizes 100 2000 --events 30

Each change to a lead rescores its account in the same transaction (`ingest.accounts`), from
the engine state of every lead of the account: one event costs time in proportion to the
account's size. For each size: a fresh SQLite store, N leads joined to one account by a
`group` call with a page view each, then `--events` single-event `ingest` calls (a demo
request of a different lead each), timed one by one; the median. The same for a lead of no
account, as the baseline. A measurement for planning, not a goal of an issue.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from leadscore import load_model
from leadscore.service import Service
from leadscore.timeutil import iso, now_us

HERE = Path(__file__).parent
MODEL = """
name: accounts
engagement:
  decay: {half_life_days: 30}
  rules:
    - {name: pricing, page: /pricing*, points: 10, limit: daily}
    - {name: demo, event: Demo Requested, points: 30, limit: once}
account:
  fit:
    - {name: size, attribute: employees, bands: [{range: [200, 5000], points: 10}]}
  engagement: {rollup: top3_mean}
  thresholds: {mqa: 1000}
"""


def per_event(size: int, events: int, account: bool) -> float:
    """Median seconds of one single-event `ingest` for a lead of an account of `size` leads
    (`account` False: the same leads, in no account)."""
    now = now_us()
    with tempfile.TemporaryDirectory() as folder, Service.open(
            f"sqlite:///{folder}/bench.db", models=[load_model("a.yaml", text=MODEL)],
            background=False) as service:
        setup = []
        for i in range(size):
            if account:
                setup.append({"type": "group", "userId": f"u{i}", "groupId": "big",
                              "traits": {"employees": 1000}, "timestamp": iso(now - 10_000)})
            setup.append({"type": "page", "userId": f"u{i}", "properties": {"path": "/pricing"},
                          "timestamp": iso(now - 10_000 + i)})
        for start in range(0, len(setup), 500):
            service.ingest(setup[start:start + 500])
        times = []
        for j in range(events):
            message = {"type": "track", "userId": f"u{j % size}", "event": "Demo Requested",
                       "timestamp": iso(now_us())}
            started = time.perf_counter()
            service.ingest([message])
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 2000, 5000])
    parser.add_argument("--events", type=int, default=30)
    parser.add_argument("--json", type=Path, default=HERE / "data" / "bench_accounts.json")
    args = parser.parse_args(argv)
    rows = []
    print(f"{'leads':>7s} {'in an account':>15s} {'in none':>10s}   per lead of the account")
    for size in args.sizes:
        inside = per_event(size, args.events, account=True)
        alone = per_event(size, args.events, account=False)
        rows.append({"leads": size, "account_ms": inside * 1e3, "no_account_ms": alone * 1e3})
        print(f"{size:7,d} {inside * 1e3:12.1f} ms {alone * 1e3:7.1f} ms   "
              f"{(inside - alone) / size * 1e6:6.1f} µs")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"events": args.events, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
