"""How long the write transaction holds the lock, in process: two `Service`s on one store
(two workers' worth), 8 threads sending calls of 100 track/page messages over 1,000 leads
(the wrk script's shape), alternating between the two. Reports the CPU µs per event spent
inside the write transactions (`GroupCommit.apply`: on SQLite, under the only write lock)
and in the whole process, and the wall time. Run it with each tree's `src` on PYTHONPATH,
alternating, and compare.

    python benchmarks/bench_write_lock.py [--calls 200] [--db postgresql://…]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from leadscore import load_model
from leadscore.service import Service

sys.path.insert(0, str(Path(__file__).parent))
from bench_ingest import MODELS, empty_store  # a sibling script, not a package


def call(number: int, tag: str) -> list[dict[str, Any]]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    out: list[dict[str, Any]] = []
    for i in range(100):
        k = number * 100 + i
        base = {"userId": f"lead-{k * 7919 % 1000}", "messageId": f"{tag}-{k}",
                "timestamp": stamp}
        out.append({**base, "type": "page", "properties": {"path": "/pricing"}} if i % 4 == 1
                   else {**base, "type": "track", "event": "Clicked", "properties": {"n": k}})
    return out


def run(db: str, calls: int, threads: int) -> dict[str, float]:
    model = load_model(MODELS / "web.yaml")
    services = [Service.open(db, models=[model], background=False, synchronous="normal")
                for _ in range(2)]
    inside = [0.0]
    plans = [0, 0]          # leads planned outside the lock (a tree with optimistic scoring), used
    lock = threading.Lock()
    for service in services:
        apply = service.group_commit.apply

        def timed(connection: Any, group: Any, apply: Any = apply) -> Any:
            started = time.thread_time()
            try:
                return apply(connection, group)
            finally:
                with lock:
                    inside[0] += time.thread_time() - started
                    for pending in group:
                        leads = getattr(getattr(pending, "prepared", None), "leads", {})
                        plans[0] += len(leads)
                        plans[1] += sum(plan.used > 0 for plan in leads.values())

        service.group_commit.apply = timed  # type: ignore[method-assign]
    for n in range(20):                     # warm: every lead has a saved state
        services[n % 2].ingest(call(n, "warm"))
    inside[0] = 0.0
    plans[:] = [0, 0]
    bodies = [call(n, "load") for n in range(calls)]

    def worker(offset: int) -> None:
        for n in range(offset, calls, threads):
            services[n % 2].ingest(bodies[n])

    cpu, wall = time.process_time(), time.perf_counter()
    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    decoded = [getattr(s, "decoded", None) for s in services]   # None: a tree without it
    for service in services:
        service.close()
    events = calls * 100
    return {"events": events, "wall_s": round(wall, 2),
            "kept_states_used": sum(d.hits for d in decoded if d is not None),
            "decoded_under_the_lock": sum(d.misses for d in decoded if d is not None),
            "leads_planned": plans[0], "plans_used": plans[1],
            "cpu_us_per_event": round(1e6 * cpu / events, 1),
            "inside_write_cpu_us_per_event": round(1e6 * inside[0] / events, 1),
            "load": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--db", default=None, help="PostgreSQL URL (default: SQLite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, empty_store(args.db, Path(tmp), "lock") as db:
        print(json.dumps(run(db, args.calls, args.threads)))


if __name__ == "__main__":
    main()
