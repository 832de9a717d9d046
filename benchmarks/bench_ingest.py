"""Ingestion benchmark: leadscore's `/v1/batch` against a bare endpoint that appends the same
batches to SQLite, side by side in one run; single `track` latency at light load; the time
from a crossing event's 2xx to the webhook's receipt. Loopback only, bounded loops.

    python benchmarks/bench_ingest.py                      # SQLite
    python benchmarks/bench_ingest.py --db postgresql://postgres@127.0.0.1:5432/test

Each server runs in its own process group with 2 uvicorn workers; the load comes from one
asyncio client process with 64 connections (100 events a request). The bare endpoint parses
the JSON body and appends one row per message (message id, lead, type, JSON) in one
transaction per request, WAL and synchronous=FULL, as leadscore's store does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "tests" / "api" / "models"
WRITE_KEY, ADMIN = "wk_bench", "adm_bench"


# ---- the bare endpoint ------------------------------------------------------------------

def bare_app() -> Any:
    """POST /v1/batch → append each message to SQLite; nothing else."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    path = os.environ["BARE_DB"]
    local = threading.local()

    def connection() -> sqlite3.Connection:
        if not hasattr(local, "db"):
            db = sqlite3.connect(path, isolation_level=None, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("CREATE TABLE IF NOT EXISTS events (message_id TEXT PRIMARY KEY, "
                       "lead TEXT, type TEXT, body TEXT)")
            local.db = db
        return local.db  # type: ignore[no-any-return]

    def append(rows: list[tuple[str, str, str, str]]) -> None:
        db = connection()
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?)", rows)
        db.execute("COMMIT")

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
    deadline = time.time() + 60
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited {process.returncode}")
        try:
            httpx.get(url + probe, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def start_leadscore(db: str, workers: int, env: dict[str, str]) -> tuple[str, Any]:
    port = free_port()
    environment = {**os.environ, "LEADSCORE_WRITE_KEYS": WRITE_KEY,
                   "LEADSCORE_ADMIN_TOKEN": ADMIN, "LEADSCORE_LOG_REQUESTS": "false",
                   "LEADSCORE_LOG_LEVEL": "warning", **env}
    process = subprocess.Popen(
        [sys.executable, "-m", "leadscore.cli_service", "serve", "--db", db, "--models",
         str(MODELS), "--port", str(port), "--workers", str(workers)],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_up(url, process, "/healthz")
    return url, process


def start_bare(path: Path, workers: int) -> tuple[str, Any]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench_ingest:bare_app", "--factory", "--app-dir",
         str(Path(__file__).parent), "--port", str(port), "--workers", str(workers),
         "--log-level", "warning", "--no-access-log"],
        env={**os.environ, "BARE_DB": str(path)}, stdout=subprocess.DEVNULL,
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
                response = await client.post("/v1/batch", content=body)
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
    with httpx.Client(base_url=url, auth=(WRITE_KEY, "")) as client:
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
    with httpx.Client(base_url=url, auth=(WRITE_KEY, "")) as client:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default=None, help="PostgreSQL URL (default: SQLite)")
    parser.add_argument("--requests", type=int, default=300, help="batches per run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write results as JSON")
    args = parser.parse_args()
    results: dict[str, Any] = {"backend": "postgresql" if args.db else "sqlite",
                               "workers": args.workers, "connections": args.connections,
                               "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        run = uuid.uuid4().hex[:8]     # fresh message ids: a database reused is no shortcut
        warm = batches(20, 100, f"warm-{run}")
        load = batches(args.requests, 100, f"load-{run}")
        if not args.db:
            bare_url, bare = start_bare(Path(tmp) / "bare.db", args.workers)
            try:
                asyncio.run(blast(bare_url, warm, args.connections))
                results["bare"] = asyncio.run(blast(bare_url, load, args.connections))
            finally:
                stop(bare)
        receiver = Receiver()
        db = args.db or f"sqlite:///{Path(tmp) / 'leadscore.db'}"
        url, server = start_leadscore(db, args.workers, {
            "LEADSCORE_WEBHOOK_URLS": receiver.url, "LEADSCORE_DELIVERY_POLL_SECONDS": "0.1"})
        try:
            asyncio.run(blast(url, warm, args.connections))
            results["leadscore"] = asyncio.run(blast(url, load, args.connections))
            results["track_light"] = light_track(url, 300)
            results["crossing_to_webhook"] = crossing_latency(url, receiver, 100)
        finally:
            stop(server)
            receiver.server.shutdown()
    if "bare" in results:
        results["ratio"] = results["leadscore"]["events_per_s"] / results["bare"][
            "events_per_s"]
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
