"""What issue #16's checks cost the ingestion path, side by side with them off.

1. `Buckets.take` (the rate limiter) per call.
2. `json_depth` (the 64-level limit) on a batch body, against `json.loads` of the same body.
3. End to end: `POST /v1/batch` of 100 messages through the app on SQLite, rate limits at their
   defaults against off (0), alternating rounds; median ms per request and CPU seconds.

    PYTHONPATH=src python benchmarks/bench_security.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from leadscore.api import create_app
from leadscore.api.body import json_depth
from leadscore.config import Settings, hash_token
from leadscore.ratelimit import Buckets

MODEL = Path(__file__).parent.parent / "tests" / "api" / "models"


def bench_take(n: int = 200_000) -> float:
    buckets = Buckets(1e9, 1e9)
    started = time.perf_counter()
    for i in range(n):
        buckets.take("key" if i % 2 else "127.0.0.1", 100)
    return (time.perf_counter() - started) / n * 1e6


def batch(n: int, start: int) -> dict[str, object]:
    return {"batch": [{"type": "track", "userId": f"u{(start + i) % 500}", "event": "Viewed",
                       "messageId": f"m{start + i}", "properties": {
                           "path": "/products/paint/oil", "tags": ["a", "b", {"c": 1}]},
                       "context": {"page": {"url": "https://shop.example/x"},
                                   "library": {"name": "analytics-python"}}}
                      for i in range(n)]}


def bench_depth(rounds: int = 30) -> tuple[float, float]:
    text = json.dumps(batch(500, 0))
    depth, parse = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        json_depth(text)
        depth.append(time.perf_counter() - started)
        started = time.perf_counter()
        json.loads(text)
        parse.append(time.perf_counter() - started)
    return statistics.median(depth) * 1e3, statistics.median(parse) * 1e3


def bench_ingest(rounds: int) -> dict[str, tuple[float, float]]:
    out: dict[str, list[tuple[float, float]]] = {"limits on": [], "limits off": []}
    with tempfile.TemporaryDirectory() as folder:
        clients = {}
        for name, rate in (("limits on", None), ("limits off", 0.0)):
            extra = {} if rate is None else {"rate_limit_per_key": 0.0, "rate_limit_per_ip": 0.0}
            settings = Settings(db=f"sqlite:///{folder}/{name.replace(' ', '_')}.db",
                                models_dir=str(MODEL), write_keys=("wk",),
                                admin_token_sha256=hash_token("adm"), log_requests=False,
                                sqlite_synchronous="normal", **extra)  # type: ignore[arg-type]
            clients[name] = TestClient(create_app(settings)).__enter__()
        sent = 0
        for _ in range(rounds):
            for name, client in clients.items():
                body = batch(100, sent)
                wall, cpu = time.perf_counter(), time.process_time()
                answer = client.post("/v1/batch", auth=("wk", ""), json=body)
                out[name].append((time.perf_counter() - wall, time.process_time() - cpu))
                assert answer.status_code == 200, answer.text
            sent += 100
            time.sleep(0.25)     # under the default limits: measure the check, not a 429
        for client in clients.values():
            client.__exit__(None, None, None)
    return {name: (statistics.median(w for w, _ in rows) * 1e3, sum(c for _, c in rows))
            for name, rows in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    print(f"Buckets.take: {bench_take():.2f} µs a call")
    depth, parse = bench_depth()
    print(f"500-message batch: json_depth {depth:.2f} ms, json.loads {parse:.2f} ms")
    for name, (median, cpu) in bench_ingest(args.rounds).items():
        print(f"POST /v1/batch (100 messages), {name}: median {median:.1f} ms, "
              f"CPU {cpu:.2f} s over {args.rounds} requests")


if __name__ == "__main__":
    main()
