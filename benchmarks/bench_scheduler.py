"""The program scheduler with many enrolments due in the same minute, on SQLite.

    python benchmarks/bench_scheduler.py                          # 20,000 enrolments, 3 rounds
    python benchmarks/bench_scheduler.py --enrolments 100000
    python benchmarks/bench_scheduler.py --baseline-src /tmp/base/src   # side by side
    python benchmarks/bench_scheduler.py --enrolments 2000 --profile    # cProfile of a tick

Setup (not timed, once per contender): a store with N leads (an e-mail address, a first name)
who subscribed to the newsletter, sent through `Service.ingest` in batches of 5,000 messages (so
each lead has its saved engine state and score, as in production), and a welcome program
entered on that event — `send_email` (a Jinja template with next best content by interest),
then `wait: {days: 1}`; `enrol_from_log` enrols them all, due at the same instant. The store is
then copied aside; each round starts from a fresh copy of it.

Timed, per round: `Scheduler.tick()` on the real clock until nothing is due — each enrolment
runs its e-mail step (exit checks on the lead's facts, the weekly-limit lookup, rendering, the
action and its journey row in the step's transaction) and starts its wait. Reported: steps per
second (wall and per CPU second of the process: SQLite runs in it), and the delay from the
common due time to each enrolment's e-mail step (p50, p99, max), counted from the tick's start
(all are due by then). SMTP delivery is not part of it (`deliver` is a separate loop).

With `--baseline-src`, the same rounds run, alternating, with another checkout's `src` (its
own setup, through its own code): medians of each. Each contender runs in its own process.
Results: stdout and JSON in benchmarks/data/bench_scheduler.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
ROOT = HERE.parent
CHUNK = 2500           # leads per Service.ingest call (two messages each)


def percentile(values: list[int], share: float) -> int:
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)]


def _world(folder: Path) -> Any:
    sys.path.insert(0, str(ROOT))
    from tests.programs.world import write_world

    return write_world(folder)


def _scheduler(service: Any, root: Path, batch: int | None) -> Any:
    from leadscore.programs.content import load_content
    from leadscore.programs.definition import load_programs
    from leadscore.programs.scheduler import Scheduler

    return Scheduler(service, load_programs([root / "programs"], templates=root / "templates"),
                     content=load_content(root / "content.yaml"),
                     **({} if batch is None else {"batch": batch}))


def prepare(folder: Path, n: int) -> dict[str, Any]:
    """Build the store with n enrolments due at once; leave it as folder/snapshot.db."""
    from sqlalchemy import func, select

    from leadscore.service import Service
    from leadscore.store.lifecycle import enrolments
    from leadscore.timeutil import iso, now_us

    root = _world(folder)
    service = Service.open(f"sqlite:///{folder / 'setup.db'}", models_dir=root / "models",
                           background=False)
    started = time.perf_counter()
    stamp = iso(now_us() - 3_600_000_000)
    for at in range(0, n, CHUNK):
        batch: list[dict[str, Any]] = []
        for i in range(at, min(at + CHUNK, n)):
            batch += [{"type": "identify", "userId": f"p{i}", "messageId": f"i{i}",
                       "timestamp": stamp, "traits": {"email": f"p{i}@x.example",
                                                      "first_name": f"P{i}"}},
                      {"type": "track", "userId": f"p{i}", "messageId": f"t{i}",
                       "timestamp": stamp, "event": "Newsletter Subscribed"}]
        service.ingest(batch)
    ingested = time.perf_counter() - started
    scheduler = _scheduler(service, root, None)
    due = now_us()
    for _ in range(2 * n // 5000 + 5):        # 5,000 log rows a call
        scheduler.enrol_from_log(due)
        if _count(service, enrolments, func, select) >= n:
            break
    enrolled = _count(service, enrolments, func, select)
    setup = time.perf_counter() - started
    service.close()                                     # checkpoints the WAL into the file
    shutil.copy(folder / "setup.db", folder / "snapshot.db")
    return {"ingest_s": ingested, "setup_s": setup, "enrolled": enrolled}


def _count(service: Any, table: Any, func: Any, select: Any) -> int:
    with service.db.read() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar() or 0)


def tick(folder: Path, batch: int | None, profile: bool) -> dict[str, Any]:
    """One round on a fresh copy of the snapshot: tick until nothing is due."""
    from sqlalchemy import select

    from leadscore.service import Service
    from leadscore.store.lifecycle import journeys
    from leadscore.timeutil import now_us

    shutil.copy(folder / "snapshot.db", folder / "round.db")
    for extra in ("-wal", "-shm"):
        (folder / f"round.db{extra}").unlink(missing_ok=True)
    root = folder
    service = Service.open(f"sqlite:///{folder / 'round.db'}", models_dir=root / "models",
                           background=False)
    scheduler = _scheduler(service, root, batch)
    load = os.getloadavg()[0]
    due = now_us()      # all are due by now: the delay counts from the scheduler's start
    cpu, wall = time.process_time(), time.perf_counter()
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        steps = profiler.runcall(scheduler.tick)
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(30)
    else:
        steps = scheduler.tick()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    with service.db.read() as connection:
        ran = [int(at) for at in connection.execute(select(journeys.c.at).where(
            journeys.c.action == "send_email")).scalars()]
    service.close()
    delays = [at - due for at in ran]
    return {"steps": steps, "seconds": wall, "cpu_seconds": cpu,
            "steps_per_second": steps / wall, "steps_per_cpu_second": steps / cpu,
            "emails": len(ran), "delay_p50_s": percentile(delays, 0.5) / 1e6,
            "delay_p99_s": percentile(delays, 0.99) / 1e6, "delay_max_s": max(delays) / 1e6,
            "load": [load, os.getloadavg()[0]]}


def _run(src: Path, *args: str) -> dict[str, Any]:
    """Run this script in a process whose `leadscore` is the one in `src`."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, __file__, *args], env=env, check=True,
                          stdout=subprocess.PIPE, text=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--enrolments", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=None,
                        help="enrolments per transaction (default: the Scheduler's)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline-src", type=Path, default=None,
                        help="another checkout's src/ to run side by side")
    parser.add_argument("--profile", action="store_true", help="cProfile one tick (stderr)")
    parser.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tick", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare is not None:
        print(json.dumps(prepare(args.prepare, args.enrolments)))
        return
    if args.tick is not None:
        print(json.dumps(tick(args.tick, args.batch, args.profile)))
        return

    contenders = {"now": ROOT / "src"}
    if args.baseline_src is not None:
        contenders["before"] = args.baseline_src.resolve()
    work = Path(tempfile.mkdtemp(prefix="bench-scheduler-"))
    batch = [] if args.batch is None else ["--batch", str(args.batch)]
    setups = {}
    for name, src in contenders.items():
        (work / name).mkdir()
        setups[name] = _run(src, "--prepare", str(work / name), "--enrolments",
                            str(args.enrolments))
        print(f"{name}: setup {args.enrolments:,} leads ingested in "
              f"{setups[name]['ingest_s']:.0f} s, enrolled by {setups[name]['setup_s']:.0f} s",
              flush=True)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
    for number in range(1, (1 if args.profile else args.rounds) + 1):
        for name, src in contenders.items():
            found = _run(src, "--tick", str(work / name), *batch,
                         *(["--profile"] if args.profile else []))
            rounds[name].append(found)
            print(f"round {number} {name}: {found['steps']:,} steps in {found['seconds']:.1f} s "
                  f"({found['steps_per_second']:,.0f} steps/s; CPU {found['cpu_seconds']:.1f} s,"
                  f" {found['steps_per_cpu_second']:,.0f} steps/CPU s); due→run delay p50 "
                  f"{found['delay_p50_s']:.1f} s, p99 {found['delay_p99_s']:.1f} s; load "
                  f"{found['load'][0]:.1f}", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    summary: dict[str, Any] = {}
    for name, found in rounds.items():
        medians = {key: statistics.median(r[key] for r in found) for key in (
            "seconds", "cpu_seconds", "steps_per_second", "steps_per_cpu_second",
            "delay_p50_s", "delay_p99_s", "delay_max_s")}
        summary[name] = {**medians, "setup": setups[name], "rounds": found}
        print(f"{name}: median of {len(found)}: {medians['steps_per_second']:,.0f} steps/s "
              f"({medians['seconds']:.1f} s wall, {medians['cpu_seconds']:.1f} s CPU, "
              f"{medians['steps_per_cpu_second']:,.0f} steps/CPU s); delay p99 "
              f"{medians['delay_p99_s']:.1f} s")
    out = HERE / "data" / "bench_scheduler.json"
    out.parent.mkdir(exist_ok=True)
    found_before = json.loads(out.read_text()) if out.exists() else {}
    found_before[str(args.enrolments)] = {
        "enrolments": args.enrolments, "batch": args.batch, "cpus": os.cpu_count(),
        "at": time.time(), **summary}
    out.write_text(json.dumps(found_before, indent=2))


if __name__ == "__main__":
    main()
