"""The program scheduler with many enrolments due in the same minute, on SQLite.

    python benchmarks/bench_scheduler.py                         # 20,000 enrolments
    python benchmarks/bench_scheduler.py --enrolments 100000

Setup (not timed): a store with N leads (an e-mail address, a first name) who subscribed to
the newsletter, and a welcome program entered on that event — `send_email` (a Jinja template
with next best content by interest), then `wait: {days: 1}`; `enrol_from_log` enrols them all
due at the same instant. Timed: `Scheduler.tick()` on the real clock until nothing is due —
each enrolment runs its e-mail step (exit checks on the lead's facts, the weekly-limit lookup,
rendering, the action and its journey row in the step's transaction) and starts its wait.
Reported: steps per second, and the delay from the common due time to each enrolment's e-mail
step (p50, p99, max), counted from the tick's start (all are due by then). SMTP delivery
is not part of it (`deliver` is a separate loop).
Results: stdout and JSON in benchmarks/data/bench_scheduler.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))


def percentile(values: list[int], share: float) -> int:
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--enrolments", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=50, help="enrolments per transaction")
    args = parser.parse_args()

    from sqlalchemy import func, select
    from tests.programs.world import write_world

    from leadscore.programs.content import load_content
    from leadscore.programs.definition import load_programs
    from leadscore.programs.scheduler import Scheduler
    from leadscore.service import Service
    from leadscore.store.lifecycle import enrolments, journeys
    from leadscore.timeutil import iso, now_us

    root = write_world(Path(tempfile.mkdtemp(prefix="bench-scheduler-")))
    service = Service.open(f"sqlite:///{root / 'bench.db'}", models_dir=root / "models",
                           background=False)
    n = args.enrolments
    started = time.perf_counter()
    stamp = iso(now_us() - 3_600_000_000)
    for at in range(0, n, 1000):
        batch = []
        for i in range(at, min(at + 1000, n)):
            batch += [{"type": "identify", "userId": f"p{i}", "messageId": f"i{i}",
                       "timestamp": stamp, "traits": {"email": f"p{i}@x.example",
                                                      "first_name": f"P{i}"}},
                      {"type": "track", "userId": f"p{i}", "messageId": f"t{i}",
                       "timestamp": stamp, "event": "Newsletter Subscribed"}]
        service.ingest(batch)
    scheduler = Scheduler(service, load_programs([root / "programs"],
                                                 templates=root / "templates"),
                          content=load_content(root / "content.yaml"), batch=args.batch)
    due = now_us()
    while True:
        before = scheduler.enrol_from_log(due)
        with service.db.read() as connection:
            enrolled = connection.execute(select(func.count()).select_from(
                enrolments)).scalar() or 0
        if enrolled >= n or (before == 0 and enrolled == 0):
            break
    setup = time.perf_counter() - started
    print(f"setup: {n:,} leads ingested and enrolled in {setup:.0f} s", flush=True)

    load = os.getloadavg()[0]
    due = now_us()     # all are due by now: the delay counts from the scheduler's start
    start = time.perf_counter()
    if os.environ.get("BENCH_PROFILE"):
        import cProfile
        import pstats

        profile = cProfile.Profile()
        steps = profile.runcall(scheduler.tick)
        pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
    else:
        steps = scheduler.tick()
    elapsed = time.perf_counter() - start
    with service.db.read() as connection:
        ran = [int(at) for at in connection.execute(select(journeys.c.at).where(
            journeys.c.action == "send_email")).scalars()]
    service.close()
    delays = [at - due for at in ran]
    result = {
        "enrolments": n, "steps": steps, "seconds": elapsed, "steps_per_second": steps / elapsed,
        "emails": len(ran), "delay_p50_s": percentile(delays, 0.5) / 1e6,
        "delay_p99_s": percentile(delays, 0.99) / 1e6, "delay_max_s": max(delays) / 1e6,
        "batch": args.batch, "load": [load, os.getloadavg()[0]], "cpus": os.cpu_count(),
        "at": time.time()}
    print(f"{n:,} enrolments due at once: {steps:,} steps in {elapsed:.1f} s "
          f"({result['steps_per_second']:,.0f} steps/s); due→run delay p50 "
          f"{result['delay_p50_s']:.1f} s, p99 {result['delay_p99_s']:.1f} s, max "
          f"{result['delay_max_s']:.1f} s; load average {load:.1f}")
    out = HERE / "data" / "bench_scheduler.json"
    found = json.loads(out.read_text()) if out.exists() else {}
    found[str(n)] = result
    out.write_text(json.dumps(found, indent=2))


if __name__ == "__main__":
    main()
