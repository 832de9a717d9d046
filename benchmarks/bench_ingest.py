"""Ingestion benchmark: leadscore's `/v1/batch` against a bare endpoint that appends the same
batches to the same database, side by side in each round; single `track` latency at light
load; the time from a crossing event's 2xx to the webhook's receipt. Loopback only, bounded
loops.

    python benchmarks/bench_ingest.py                      # SQLite, 3 rounds
    python benchmarks/bench_ingest.py --db postgresql://postgres@127.0.0.1:5432/test
    python benchmarks/bench_ingest.py --synchronous normal # SQLite without an fsync per commit
    python benchmarks/bench_ingest.py --baseline-src /tmp/base/src   # another leadscore too
    python benchmarks/bench_ingest.py --db postgresql://… --compare-workers 1,2,4

Each server runs in its own process group with 2 uvicorn workers; the load comes from one
asyncio client process with 64 connections (100 events a request). The bare endpoint parses
the JSON body and appends one row per message (message id, lead, type, JSON) in one
transaction per request: on SQLite in WAL mode with the same `synchronous` as leadscore, on
PostgreSQL with one executemany. Every round starts each server on an empty store (a fresh
SQLite file, a fresh PostgreSQL schema) and runs the contenders one after the other; the
figures are the medians over the rounds, the ratio the median of each round's ratio. The
machine is shared: the load average is recorded around every round. With `--compare-workers`,
leadscore runs once per number of workers in every round (the bare endpoint with `--workers`),
in an order that rotates from round to round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "tests" / "api" / "models"
WRITE_KEY, ADMIN = "wk_bench", "adm_bench"


# ---- the bare endpoint ------------------------------------------------------------------

def bare_app() -> Any:
    """POST /v1/batch → append each message to the store (SQLite or PostgreSQL); nothing
    else."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    target = os.environ["BARE_DB"]
    local = threading.local()
    create = ("CREATE TABLE IF NOT EXISTS events (message_id TEXT PRIMARY KEY, lead TEXT, "
              "type TEXT, body TEXT)")

    def sqlite_append(rows: list[tuple[str, str, str, str]]) -> None:
        if not hasattr(local, "db"):
            db = sqlite3.connect(target, isolation_level=None, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={os.environ.get('BARE_SYNCHRONOUS', 'FULL')}")
            db.execute(create)
            local.db = db
        db = local.db
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?)", rows)
        db.execute("COMMIT")

    # PostgreSQL: a pool of at most 8 connections a worker (as leadscore's pool), not one per
    # thread — 4 workers' thread pools would open more than the server's max_connections.
    idle: queue.Queue[Any] = queue.Queue()
    opened = threading.BoundedSemaphore(8)

    def postgres_append(rows: list[tuple[str, str, str, str]]) -> None:
        import psycopg

        try:
            db = idle.get_nowait()
        except queue.Empty:
            if opened.acquire(blocking=False):
                db = psycopg.connect(target, autocommit=True)
                db.execute(create)
            else:
                db = idle.get()
        try:
            with db.transaction(), db.cursor() as cursor:
                cursor.executemany("INSERT INTO events VALUES (%s, %s, %s, %s) "
                                   "ON CONFLICT DO NOTHING", rows)
        finally:
            idle.put(db)

    append = postgres_append if target.startswith("postgresql") else sqlite_append

    async def batch(request: Request) -> JSONResponse:
        from starlette.concurrency import run_in_threadpool

        body = json.loads(await request.body())
        rows = [(m.get("messageId") or str(uuid.uuid4()), str(m.get("userId")),
                 m.get("type", ""), json.dumps(m)) for m in body["batch"]]
        await run_in_threadpool(append, rows)
        return JSONResponse({"success": True})

    return Starlette(routes=[Route("/v1/batch", batch, methods=["POST"])])


# ---- servers -----------------------------------------------------------------------------

def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str, process: subprocess.Popen[bytes], probe: str) -> None:
    deadline = time.time() + 180        # 4 workers took over a minute to start at load 30
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited {process.returncode}")
        try:
            httpx.get(url + probe, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def start_leadscore(db: str, workers: int, env: dict[str, str], src: str | None = None
                    ) -> tuple[str, Any]:
    """`leadscore serve` (from the source folder `src`, where given)."""
    port = free_port()
    environment = {**os.environ, "LEADSCORE_WRITE_KEYS": WRITE_KEY,
                   "LEADSCORE_ADMIN_TOKEN": ADMIN, "LEADSCORE_LOG_REQUESTS": "false",
                   "LEADSCORE_LOG_LEVEL": "warning",
                   "LEADSCORE_WEBHOOK_SECRET": "whsec_bench",  # every webhook is signed
                   # throughput from one client: the rate limits would measure themselves
                   "LEADSCORE_RATE_LIMIT_PER_KEY": "0", "LEADSCORE_RATE_LIMIT_PER_IP": "0",
                   **env}
    if src is not None:
        environment["PYTHONPATH"] = src
    process = subprocess.Popen(
        [sys.executable, "-m", "leadscore.cli", "serve", "--db", db, "--models",
         str(MODELS), "--port", str(port), "--workers", str(workers)],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_up(url, process, "/healthz")
    return url, process


def start_bare(target: str, workers: int, synchronous: str) -> tuple[str, Any]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench_ingest:bare_app", "--factory", "--app-dir",
         str(Path(__file__).parent), "--port", str(port), "--workers", str(workers),
         "--log-level", "warning", "--no-access-log"],
        env={**os.environ, "BARE_DB": target, "BARE_SYNCHRONOUS": synchronous.upper()},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_up(url, process, "/")
    return url, process


def stop(process: Any) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(60)


# ---- load ----------------------------------------------------------------------------------

def batches(n: int, size: int, tag: str, leads: int = 5000) -> list[bytes]:
    out = []
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    for b in range(n):
        messages = []
        for i in range(size):
            k = b * size + i
            kind = ("track", "page", "track", "track")[k % 4]
            message: dict[str, Any] = {"type": kind, "userId": f"lead-{k * 7919 % leads}",
                                       "messageId": f"{tag}-{k}", "timestamp": stamp}
            if kind == "page":
                message["properties"] = {"path": "/pricing", "title": "Pricing"}
            else:
                message["event"] = "Clicked"
                message["properties"] = {"button": "signup", "n": k}
            messages.append(message)
        out.append(json.dumps({"batch": messages}).encode())
    return out


async def blast(url: str, bodies: list[bytes], connections: int) -> dict[str, float]:
    latencies: list[float] = []
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    failures = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, auth=(WRITE_KEY, ""), limits=limits,
                                 timeout=120, headers={"Content-Type": "application/json"}
                                 ) as client:
        async def worker() -> None:
            nonlocal failures
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                try:
                    response = await client.post("/v1/batch", content=body)
                except httpx.HTTPError:      # a dropped connection: counted, not fatal
                    failures += 1
                    continue
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    events = sum(len(json.loads(b)["batch"]) for b in bodies)
    return {"events_per_s": events / elapsed, "requests": len(bodies), "seconds": elapsed,
            "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * quantile(latencies, 0.99), "failures": failures}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def light_track(url: str, n: int) -> dict[str, float]:
    latencies = []
    with httpx.Client(base_url=url, auth=(WRITE_KEY, ""), timeout=60) as client:
        for i in range(n):
            body = {"userId": f"solo-{i % 50}", "event": "Clicked", "messageId": f"solo-{i}"}
            started = time.perf_counter()
            response = client.post("/v1/track", json=body)
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
            time.sleep(0.01)
    return {"p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * quantile(latencies, 0.99), "n": n}


class Receiver:
    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.at.setdefault(body["lead_id"], time.perf_counter())
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def crossing_latency(url: str, receiver: Receiver, n: int) -> dict[str, float]:
    acked: dict[str, float] = {}
    with httpx.Client(base_url=url, auth=(WRITE_KEY, ""), timeout=60) as client:
        for _ in range(n):
            lead = f"mql-{uuid.uuid4().hex[:8]}"
            client.post("/v1/identify", json={"userId": lead,
                                              "traits": {"email": f"{lead}@x.example"}})
            response = client.post("/v1/track", json={"userId": lead,
                                                      "event": "Demo Requested"})
            acked[lead] = time.perf_counter()
            assert response.status_code == 200
            time.sleep(0.05)
    deadline = time.time() + 30
    while time.time() < deadline and not set(acked) <= set(receiver.at):
        time.sleep(0.05)
    delays = [receiver.at[lead] - acked[lead] for lead in acked if lead in receiver.at]
    return {"p50_ms": 1000 * statistics.median(delays), "p99_ms": 1000 * quantile(delays, 0.99),
            "received": len(delays), "sent": n}


@contextmanager
def empty_store(db: str | None, tmp: Path, name: str) -> Iterator[str]:
    """A URL of an empty store: a new SQLite file, or a new PostgreSQL schema (dropped after)."""
    if db is None:
        yield f"sqlite:///{tmp / f'{name}-{uuid.uuid4().hex[:8]}.db'}"
        return
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    plain = db.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{plain}{'&' if '?' in plain else '?'}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(plain, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


def run_leadscore(label: str, db: str, args: argparse.Namespace, bodies: list[list[bytes]],
                  src: str | None, receiver: Receiver, workers: int) -> dict[str, Any]:
    warm, load = bodies
    url, server = start_leadscore(db, workers, {
        "LEADSCORE_WEBHOOK_URLS": receiver.url, "LEADSCORE_DELIVERY_POLL_SECONDS": "0.1",
        "LEADSCORE_SQLITE_SYNCHRONOUS": args.synchronous}, src)
    try:
        asyncio.run(blast(url, warm, args.connections))
        out: dict[str, Any] = {"batch": asyncio.run(blast(url, load, args.connections))}
        time.sleep(args.settle)     # let the background catch up with the load first
        out["track_light"] = light_track(url, args.tracks)
        out["crossing_to_webhook"] = crossing_latency(url, receiver, args.crossings)
    finally:
        stop(server)
    print(f"  {label}: {out['batch']['events_per_s']:.0f} events/s, track p99 "
          f"{out['track_light']['p99_ms']:.1f} ms", file=sys.stderr)
    return out


def git_state() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
    dirty = git("status", "--porcelain", "--", "src/leadscore/service.py", "src/leadscore/store",
                "src/leadscore/ingest", "src/leadscore/api", "src/leadscore/server.py")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if dirty else "")


def median_of(rounds: list[dict[str, Any]], *path: str) -> float:
    values = []
    for entry in rounds:
        for key in path:
            entry = entry[key]
        values.append(float(entry))  # type: ignore[arg-type]
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default=None, help="PostgreSQL URL (default: SQLite)")
    parser.add_argument("--requests", type=int, default=300, help="batches per run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tracks", type=int, default=300, help="single tracks at light load")
    parser.add_argument("--settle", type=float, default=0.0,
                        help="seconds to wait after the batch load before the single tracks")
    parser.add_argument("--crossings", type=int, default=100)
    parser.add_argument("--synchronous", choices=("full", "normal"), default="full",
                        help="SQLite's synchronous, for leadscore and the bare endpoint")
    parser.add_argument("--baseline-src", default=None,
                        help="also run leadscore from this source folder (e.g. an older commit "
                             "exported with git archive), in the same rounds")
    parser.add_argument("--compare-workers", default=None, metavar="N,N,…",
                        help="run leadscore with each of these numbers of workers side by "
                             "side in every round, e.g. 1,2,4 (instead of --workers)")
    parser.add_argument("--out", type=Path, default=None, help="write results as JSON")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "backend": "postgresql" if args.db else "sqlite", "workers": args.workers,
        "connections": args.connections, "cores": os.cpu_count(), "git": git_state(),
        "synchronous": args.synchronous if not args.db else None,
        "baseline_src": args.baseline_src, "rounds": []}
    contenders: list[tuple[str, str | None, int]] = [
        (f"leadscore-{n}w", None, n) for n in map(int, args.compare_workers.split(","))
    ] if args.compare_workers else [("leadscore", None, args.workers)]
    contenders += [("baseline", args.baseline_src, args.workers)] if args.baseline_src else []
    results["compare_workers"] = [n for _, _, n in contenders] if args.compare_workers else None
    with tempfile.TemporaryDirectory() as tmp:
        receiver = Receiver()
        try:
            for number in range(args.rounds):
                entry: dict[str, Any] = {"load_before": os.getloadavg()}
                print(f"round {number + 1}/{args.rounds}", file=sys.stderr)
                run = uuid.uuid4().hex[:8]     # fresh message ids: nothing stored is a shortcut
                bodies = [batches(20, 100, f"warm-{run}"),
                          batches(args.requests, 100, f"load-{run}")]
                with empty_store(args.db, Path(tmp), "bare") as target:
                    bare_url, bare = start_bare(target.removeprefix("sqlite:///"),
                                                args.workers, args.synchronous)
                    try:
                        asyncio.run(blast(bare_url, bodies[0], args.connections))
                        entry["bare"] = asyncio.run(blast(bare_url, bodies[1],
                                                          args.connections))
                    finally:
                        stop(bare)
                print(f"  bare: {entry['bare']['events_per_s']:.0f} events/s", file=sys.stderr)
                shift = number % len(contenders)
                for label, src, workers in contenders[shift:] + contenders[:shift]:
                    with empty_store(args.db, Path(tmp), label) as db:
                        entry[label] = run_leadscore(label, db, args, bodies, src, receiver,
                                                     workers)
                    entry[label]["ratio"] = (entry[label]["batch"]["events_per_s"]
                                             / entry["bare"]["events_per_s"])
                entry["load_after"] = os.getloadavg()
                results["rounds"].append(entry)
        finally:
            receiver.server.shutdown()
    rounds = results["rounds"]
    summary: dict[str, Any] = {"bare_events_per_s": median_of(rounds, "bare", "events_per_s"),
                               "bare_p99_ms": median_of(rounds, "bare", "p99_ms")}
    for label, _, _ in contenders:
        summary[label] = {
            "events_per_s": median_of(rounds, label, "batch", "events_per_s"),
            "batch_p50_ms": median_of(rounds, label, "batch", "p50_ms"),
            "batch_p99_ms": median_of(rounds, label, "batch", "p99_ms"),
            "ratio": median_of(rounds, label, "ratio"),
            "track_p50_ms": median_of(rounds, label, "track_light", "p50_ms"),
            "track_p99_ms": median_of(rounds, label, "track_light", "p99_ms"),
            "crossing_p50_ms": median_of(rounds, label, "crossing_to_webhook", "p50_ms"),
            "crossing_p99_ms": median_of(rounds, label, "crossing_to_webhook", "p99_ms"),
            "failures": sum(r[label]["batch"]["failures"] for r in rounds)}
    summary["load_average"] = [min(r["load_before"][0] for r in rounds),
                               max(r["load_after"][0] for r in rounds)]
    results["median"] = summary
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
