"""Ingestion measured with a C load generator: `wrk` drives leadscore's `/v1/batch` and the bare
endpoint (`bench_ingest.bare_app`: parse, append, nothing else) side by side, so the client is
never what caps the figure (one Python asyncio client measured the bare endpoint at 10–14k
events/s; wrk at 77–88k).

    python benchmarks/bench_ingest_wrk.py                          # SQLite full and normal
    python benchmarks/bench_ingest_wrk.py --stores postgresql --workers 1,2,4
    python benchmarks/bench_ingest_wrk.py --duration 15 --rounds 3 --out results.json

Per store (SQLite `synchronous=full`, `normal`; PostgreSQL) and number of workers, every round
starts each contender on an empty store and runs `wrk -t2 -c64 -d<duration>s` with
`benchmarks/wrk/batch.lua` (100 track/page messages a request over 1,000 leads, or `--leads`;
unique messageIds). After each leadscore run it checks that every acknowledged message is stored
exactly once and scored once (the `clicked` rule has matched as many events as the log holds,
for a sample of leads); then it measures single-`track` latency at light load and the time
from a crossing's 2xx to the webhook (the Python client is fine at light load). Medians over
the rounds; the ratio is the median of each round's ratio.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_ingest import (  # a sibling script, not a package
    ADMIN,
    WRITE_KEY,
    Receiver,
    crossing_latency,
    empty_store,
    light_track,
    start_bare,
    start_leadscore,
    stop,
)

SCRIPT = Path(__file__).parent / "wrk" / "batch.lua"
AUTH = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def cpu_seconds(group: int) -> float:
    """CPU seconds (user + system) so far of the live processes of a process group: a server
    and its workers (the machine is shared: CPU seconds per event say what wall time cannot)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:          # the process ended meanwhile
            continue
        if int(fields[2]) == group:      # pgrp; utime, stime are fields 14, 15 of stat
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def drive(url: str, seconds: float, tag: str, threads: int, connections: int,
          server: Any = None, leads: int = 1000) -> dict[str, Any]:
    """One wrk run: its JSON line (ok, other, seconds, errors, p50_ms, p99_ms) + events/s, and
    the server's CPU µs per event acknowledged (where `server` is given)."""
    before = cpu_seconds(server.pid) if server is not None else 0.0
    done = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(int(seconds), 1)}s", "--timeout",
         "30s", "-s", str(SCRIPT), url, "--", tag, AUTH, str(leads)], capture_output=True,
        text=True,
        check=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith('{"ok"'))
    out: dict[str, Any] = json.loads(line)
    out["events_per_s"] = out["ok"] * 100 / out["seconds"]
    if server is not None:
        out["server_cpu_s"] = round(cpu_seconds(server.pid) - before, 2)
        out["cpu_us_per_event"] = round(1e6 * out["server_cpu_s"] / max(out["ok"] * 100, 1), 1)
    return out


def stored(db: str, tag: str) -> int:
    """Messages of this run in the store (leadscore's log or the bare table)."""
    query = "SELECT count(*) FROM events WHERE message_id LIKE ?"
    if db.startswith("sqlite:///"):
        with sqlite3.connect(db.removeprefix("sqlite:///")) as connection:
            return int(connection.execute(query, (f"{tag}-%",)).fetchone()[0])
    import psycopg

    with psycopg.connect(db, autocommit=True) as connection:
        row = connection.execute(query.replace("?", "%s"), (f"{tag}-%",)).fetchone()
        return int(row[0]) if row else 0


def settle(db: str, tag: str, quiet: float = 1.0, limit: float = 120.0) -> None:
    """Wait until the requests wrk left in flight are written (the log stops growing for
    `quiet` seconds, longer than a transaction takes): checked before that, a lead's score
    could lag its log."""
    deadline, last = time.time() + limit, -1
    while time.time() < deadline:
        count = stored(db, tag)
        if count == last:
            return
        last = count
        time.sleep(quiet)


def clicks_in_log(db: str, leads: list[str]) -> dict[str, int]:
    query = ("SELECT user_id, count(*) FROM events WHERE event = 'Clicked' AND user_id IN "
             f"({', '.join('?' for _ in leads)}) GROUP BY user_id")
    if db.startswith("sqlite:///"):
        with sqlite3.connect(db.removeprefix("sqlite:///")) as connection:
            return dict(connection.execute(query, leads).fetchall())
    import psycopg

    with psycopg.connect(db, autocommit=True) as connection:
        return dict(connection.execute(query.replace("?", "%s"), leads).fetchall())


def check_leadscore(url: str, db: str, tag: str, run: dict[str, Any]) -> dict[str, Any]:
    """Every acknowledged message stored once (in-flight ones at wrk's stop may be stored too,
    unacknowledged); the sampled leads' `clicked` counts equal their log (scored once)."""
    count = stored(db, tag)
    acked = run["ok"] * 100
    leads = run.get("leads", 1000)
    sample = [f"lead-{n}" for n in range(0, leads, max(leads // 25, 1))]
    logged = clicks_in_log(db, sample)
    scored: dict[str, int] = {}
    with httpx.Client(base_url=url, timeout=60,
                      headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        for lead in sample:
            found = client.get(f"/api/leads/{lead}", params={"model": "web"})
            if found.status_code == 200:
                scored[lead] = sum(r.get("matched") or 0 for r in found.json()["reasons"]
                                   if r["rule"] == "clicked")
    mismatched = {lead: (scored.get(lead), n) for lead, n in logged.items()
                  if scored.get(lead) != n}
    return {"stored": count, "acknowledged": acked,
            "lost": max(acked - count, 0), "scored_mismatch": len(mismatched),
            "ok": count >= acked and not mismatched}


def one_round(store: str, workers: int, args: argparse.Namespace, tmp: Path,
              receiver: Receiver) -> dict[str, Any]:
    synchronous = "normal" if store == "sqlite-normal" else "full"
    base = POSTGRES if store == "postgresql" else None
    out: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    tag = f"w{uuid.uuid4().hex[:8]}"
    with empty_store(base, tmp, "bare") as target:
        url, server = start_bare(target.removeprefix("sqlite:///"), workers, synchronous)
        try:
            drive(url, 2, f"{tag}warm", args.threads, args.connections, leads=args.leads)
            out["bare"] = drive(url, args.duration, tag, args.threads, args.connections, server,
                                args.leads)
            out["bare"]["stored"] = stored(target, tag)
        finally:
            stop(server)
    for label, src in [("leadscore", None)] + ([("baseline", args.baseline_src)]
                                                 if args.baseline_src else []):
        with empty_store(base, tmp, label) as db:
            url, server = start_leadscore(db, workers, {
                "LEADSCORE_WEBHOOK_URLS": receiver.url, "LEADSCORE_DELIVERY_POLL_SECONDS": "0.1",
                "LEADSCORE_SQLITE_SYNCHRONOUS": synchronous}, src)
            try:
                drive(url, 2, f"{tag}warm", args.threads, args.connections, leads=args.leads)
                run = out[label] = drive(url, args.duration, tag, args.threads,
                                         args.connections, server, args.leads)
                run["leads"] = args.leads
                # quiet for longer than a request takes: a group commit holds many
                settle(db, tag, quiet=max(2.0, 2 * run["p99_ms"] / 1000))
                run["check"] = check_leadscore(url, db, tag, run)
                time.sleep(args.settle)     # light load: once the service has caught up
                run["track_light"] = light_track(url, args.tracks)
                run["crossing_to_webhook"] = crossing_latency(url, receiver, args.crossings)
            finally:
                stop(server)
        run["ratio"] = run["events_per_s"] / out["bare"]["events_per_s"]
    out["load_after"] = os.getloadavg()[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stores", default="sqlite-full,sqlite-normal",
                        help="comma-separated: sqlite-full, sqlite-normal, postgresql")
    parser.add_argument("--workers", default="2", help="comma-separated, e.g. 1,2,4")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--tracks", type=int, default=200)
    parser.add_argument("--crossings", type=int, default=50)
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds after the load before the single tracks (light load)")
    parser.add_argument("--baseline-src", default=None,
                        help="also run leadscore from this source folder (e.g. main exported "
                             "with git archive) in the same rounds, right after this tree's")
    parser.add_argument("--leads", type=int, default=1000,
                        help="the leads the messages are spread over (fewer: more writers "
                             "touch the same lead at once)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    results: dict[str, Any] = {"cores": os.cpu_count(), "duration_s": args.duration,
                               "wrk": f"-t{args.threads} -c{args.connections}",
                               "leads": args.leads, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        receiver = Receiver()
        try:
            for store in args.stores.split(","):
                for workers in map(int, args.workers.split(",")):
                    rounds = []
                    for number in range(args.rounds):
                        entry = one_round(store, workers, args, Path(tmp), receiver)
                        rounds.append(entry)
                        for label in ("leadscore", "baseline"):
                            if label in entry:
                                print(f"{store} {workers}w round {number + 1}: {label} "
                                      f"{entry[label]['events_per_s']:,.0f} ev/s "
                                      f"({entry[label]['cpu_us_per_event']} CPU µs/event), bare "
                                      f"{entry['bare']['events_per_s']:,.0f} ev/s, ratio "
                                      f"{entry[label]['ratio']:.1%}, check "
                                      f"{entry[label]['check']}", file=sys.stderr)
                    results["runs"][f"{store}/{workers}w"] = summarize(rounds)
                    if args.out:        # after each configuration: a later one may fail
                        args.out.write_text(json.dumps(results, indent=2) + "\n")
        finally:
            receiver.server.shutdown()
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    def med(*path: str) -> float:
        values = []
        for entry in rounds:
            for key in path:
                entry = entry[key]
            values.append(float(entry))  # type: ignore[arg-type]
        return round(statistics.median(values), 3)

    out: dict[str, Any] = {
        "bare_events_per_s": med("bare", "events_per_s"),
        "bare_cpu_us_per_event": med("bare", "cpu_us_per_event"),
        "load": [min(r["load_before"] for r in rounds), max(r["load_after"] for r in rounds)],
        "rounds": rounds}
    for label in ("leadscore", "baseline"):
        if label in rounds[0]:
            out[label] = {
                "events_per_s": med(label, "events_per_s"), "ratio": med(label, "ratio"),
                "cpu_us_per_event": med(label, "cpu_us_per_event"),
                "batch_p50_ms": med(label, "p50_ms"), "batch_p99_ms": med(label, "p99_ms"),
                "track_p50_ms": med(label, "track_light", "p50_ms"),
                "track_p99_ms": med(label, "track_light", "p99_ms"),
                "crossing_p50_ms": med(label, "crossing_to_webhook", "p50_ms"),
                "crossing_p99_ms": med(label, "crossing_to_webhook", "p99_ms"),
                "checks_ok": all(r[label]["check"]["ok"] for r in rounds)}
    return out


if __name__ == "__main__":
    main()
