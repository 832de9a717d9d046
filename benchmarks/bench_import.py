"""`leadscore import` of the demo world (issue #23): the message path against the bulk import
path, side by side.

The demo world's leads table (identify + group messages) and events table (track and page
messages) are imported into a fresh store, `--runs` times each way, alternating; the medians
of CPU seconds (this process, the store's work included on SQLite) and wall seconds are
reported, with events per CPU second. `--db postgresql` runs against LEADSCORE_TEST_POSTGRES
(a fresh schema per run). `--leads N` takes the first N leads of the world.

    python benchmarks/bench_import.py [--runs 3] [--db sqlite|postgresql] [--leads N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from leadscore import load_model
from leadscore.demo.serve import subset
from leadscore.demo.show import MODEL_FILES, MODELS_DIR
from leadscore.demo.world import generate_world
from leadscore.service import Service

POSTGRES = os.environ.get("LEADSCORE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
WAYS: dict[str, dict[str, Any]] = {
    "message path (500 a transaction)": dict(bulk=False, batch_size=500),
    "message path (5,000, the demo before)": dict(bulk=False, batch_size=5_000),
    "bulk path": dict(bulk=True)}


@contextmanager
def store(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


def run(kind: str, tables: Any, options: dict[str, Any]) -> dict[str, float]:
    leads, events = tables
    models = [load_model(MODELS_DIR / name) for name in MODEL_FILES]
    with store(kind) as url, Service.open(url, models=models, background=False) as service:
        out = {}
        parts: tuple[tuple[Literal["leads", "events"], Any], ...] = (
            ("leads", leads), ("events", events))
        for name, table in parts:
            wall, cpu = time.perf_counter(), time.process_time()
            result = service.import_events(table, kind=name, history=False, **options)
            out[f"{name} cpu"] = time.process_time() - cpu
            out[f"{name} wall"] = time.perf_counter() - wall
            out[f"{name} handoffs"] = result.handoffs
            assert result.accepted > 0 and result.by_message == (
                0 if options["bulk"] else result.accepted + result.duplicates)
        return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--leads", type=int, default=None)
    parser.add_argument("--skip-5000", action="store_true", help="leave out the 5,000 batches")
    args = parser.parse_args()
    tables = subset(generate_world(7), args.leads)
    ways = {k: v for k, v in WAYS.items() if not (args.skip_5000 and "5,000" in k)}
    found: dict[str, list[dict[str, float]]] = {way: [] for way in ways}
    for _ in range(args.runs):
        for way, options in ways.items():
            found[way].append(run(args.db, tables, options))
    report = {"db": args.db, "leads": tables[0].num_rows, "events": tables[1].num_rows,
              "runs": args.runs, "load": os.getloadavg(), "ways": {}}
    for way, runs in found.items():
        medians = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        medians["events per cpu s"] = tables[1].num_rows / medians["events cpu"]
        report["ways"][way] = {k: round(v, 2) for k, v in medians.items()}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
