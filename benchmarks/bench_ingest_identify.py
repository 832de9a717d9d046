"""In-process ingest of a mixed stream (identify calls among track and page events), CPU
seconds, to see what the stream rules cost the service (#15: an identify reads the lead's
later identify calls from the log before its traits are merged).

    python benchmarks/bench_ingest_identify.py [--messages 20000] [--identify 0.2]

Run it with each tree's `src` on PYTHONPATH, alternating, and compare the medians.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from pathlib import Path

import leadscore
from leadscore import load_model
from leadscore.service import Service
from leadscore.timeutil import US_PER_DAY, iso, parse_timestamp

NOW = parse_timestamp("2026-05-20T12:00:00Z")
MODEL = """\
name: web
fit:
  - {name: has email, when: {email: {exists: true}}, points: 10}
  - {name: student, when: {occupation: {eq: student}}, disqualify: student}
engagement:
  decay: {half_life_days: 10}
  rules:
    - {name: pricing, page: /pricing*, points: 10, limit: daily}
    - {name: demo, event: Demo Requested, points: 30, limit: once}
thresholds: {mql: 40}
"""


def stream(n: int, share: float, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    for i in range(n):
        user = f"u{rng.randrange(n // 20)}"
        at = iso(NOW - round((n - i) / n * 30 * US_PER_DAY))
        if rng.random() < share:
            out.append({"type": "identify", "userId": user, "timestamp": at,
                        "messageId": f"m{i}", "traits": {
                            "email": rng.choice([None, f"{user}@x.example"]),
                            "occupation": rng.choice(["student", "artist", None])}})
        elif rng.random() < 0.5:
            out.append({"type": "page", "userId": user, "timestamp": at, "messageId": f"m{i}",
                        "properties": {"path": "/pricing"}})
        else:
            out.append({"type": "track", "userId": user, "timestamp": at, "messageId": f"m{i}",
                        "event": "Demo Requested"})
    return out


def run(messages: int, share: float) -> dict[str, object]:
    sent = stream(messages, share, 7)
    with tempfile.TemporaryDirectory() as folder, Service.open(
            f"sqlite:///{Path(folder) / 'bench.db'}", models=[load_model("web.yaml",
                                                                         text=MODEL)],
            background=False, synchronous="normal") as service:
        before = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.perf_counter()
        for start in range(0, len(sent), 100):
            service.ingest(sent[start:start + 100], received_at=NOW)
        wall = time.perf_counter() - wall
        after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"tree": str(Path(leadscore.__file__).parents[2]), "messages": messages,
            "identify_share": share, "cpu_s": round(cpu, 2), "wall_s": round(wall, 2)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--identify", type=float, default=0.2)
    arguments = parser.parse_args()
    print(json.dumps(run(arguments.messages, arguments.identify)))
