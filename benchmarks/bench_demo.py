"""`leadscore demo --serve`'s time to URL (issue #23): `build_store`, everything before the URL
is printed, timed in process with the wall and CPU seconds at which each step started.

    PYTHONPATH=<tree>/src python benchmarks/bench_demo.py [FOLDER]

Run it for two trees alternating (main's and a branch's) to compare them side by side.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from leadscore.demo.serve import build_store


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "demo"
    marks: list[tuple[str, float, float]] = []
    wall, cpu = time.perf_counter(), time.process_time()
    seen: set[str] = set()

    def progress(step: str, done: int, total: int | None) -> None:
        if step not in seen:
            seen.add(step)
            marks.append((step, round(time.perf_counter() - wall, 1),
                          round(time.process_time() - cpu, 1)))

    store = build_store(folder, 7, progress=progress)
    print("steps (name, wall s, CPU s at its start):", marks)
    print(f"wall {time.perf_counter() - wall:.1f} s, CPU {time.process_time() - cpu:.1f} s, "
          f"{store.leads} leads, {store.events} events, load {os.getloadavg()}")


if __name__ == "__main__":
    main()
