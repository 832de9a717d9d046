"""A merge of a lead with a long history, and other clients' writes meanwhile (issue #16).

A lead with HISTORY events is merged (alias) while another thread sends one track message at
a time for other leads; the latency of those writes while the merging call is under way is
reported, with the merge's replay in its transaction (`--inside`, the tree before #16) and
after it, outside the write lock (the default). SQLite, one process, `received_at` fixed.

    python benchmarks/bench_merge.py [--history 20000] [--inside]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path

from leadscore import load_model
from leadscore.ingest import transaction
from leadscore.service import Service
from leadscore.timeutil import US_PER_DAY, iso, parse_timestamp

NOW = parse_timestamp("2026-05-20T12:00:00Z")
MODEL = """\
name: web
engagement:
  decay: {half_life_days: 10}
  rules:
    - {name: demo, event: Demo Requested, points: 30, limit: once}
    - {name: opens, event: Email Opened, points: 2, distinct: properties.email_id}
thresholds: {mql: 40}
"""


def track(user: str, name: str, days_ago: float, **properties: object) -> dict[str, object]:
    return {"type": "track", "userId": user, "event": name, "properties": properties,
            "timestamp": iso(NOW - round(days_ago * US_PER_DAY))}


def run(history: int, inside: bool) -> dict[str, object]:
    if inside:      # the tree before #16: the replay inside the merge's write transaction
        class Eager(transaction.Session):
            @property
            def defer_replays(self) -> bool:
                return False

            @defer_replays.setter
            def defer_replays(self, value: bool) -> None:
                pass

        transaction.Session = Eager  # type: ignore[misc]
    with tempfile.TemporaryDirectory() as folder, Service.open(
            f"sqlite:///{Path(folder) / 'bench.db'}", models=[load_model("web.yaml",
                                                                         text=MODEL)],
            background=False) as service:
        for start in range(0, history, 1000):
            service.ingest([{**track("big", "Email Opened", (i % 3000) / 100,
                                     email_id=f"e{i}"), "messageId": f"b{i}"}
                            for i in range(start, min(history, start + 1000))],
                           received_at=NOW)
        service.ingest([track("small", "Demo Requested", 2)], received_at=NOW)
        took: list[float] = []

        def merge() -> None:
            begin = time.perf_counter()
            service.ingest([{"type": "alias", "userId": "big", "previousId": "small"}],
                           received_at=NOW)
            took.append(time.perf_counter() - begin)

        cpu = resource.getrusage(resource.RUSAGE_SELF)
        merging = threading.Thread(target=merge)
        merging.start()
        waits: list[float] = []
        n = 0
        while merging.is_alive():
            n += 1
            begin = time.perf_counter()
            service.ingest([track(f"other-{n % 50}", "Email Opened", 0.1, email_id=f"o{n}")],
                           received_at=NOW)
            waits.append(time.perf_counter() - begin)
        merging.join()
        after = resource.getrusage(resource.RUSAGE_SELF)
    return {"history": history, "replay": "inside the write transaction" if inside
            else "after it, outside the write lock", "merge_s": round(took[0], 3),
            "writes_meanwhile": len(waits),
            "write_ms_median": round(statistics.median(waits) * 1000, 1) if waits else None,
            "write_ms_max": round(max(waits) * 1000, 1) if waits else None,
            "cpu_s": round(after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime, 2)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=20000)
    parser.add_argument("--inside", action="store_true")
    arguments = parser.parse_args()
    print(json.dumps(run(arguments.history, arguments.inside)))
