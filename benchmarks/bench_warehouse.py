"""Scoring events that live in PostgreSQL: in the database (`leadscore score --engine
postgres`, the compiled plan, no export) against exporting them to Parquet and scoring with
DuckDB (then writing the scores back), side by side, with the time of each step.

    python benchmarks/bench_warehouse.py --size 10m --runs 3 \
        --db postgresql://postgres@127.0.0.1:5432/test

Setup (not timed): `generate.py`'s events and leads (the bench_batch data) loaded into schema
`bench_warehouse` with COPY. Then, per run, in alternation:

  in-database   score_into: the compiled statement into a temp table, upserted into
                bench_warehouse.scores (replace)
  export+duckdb export  COPY events and leads TO STDOUT (CSV) → Parquet files
                score   score_many on the Parquet files (DuckDB)
                write   the scores back into bench_warehouse.scores_duckdb (replace)

Each step: wall seconds, this process's CPU seconds (DuckDB's threads included) and the CPU
seconds of the PostgreSQL backend serving it (/proc/<pid>/stat). Parallel query is off
(max_parallel_workers_per_gather = 0) so that the backend's CPU is all the server did: on a
shared 2-core machine the CPU seconds are the figure to read, wall times depend on the load.
The in-database steps are `score_into`'s (its statement and its upsert), on one connection.
Results: JSON beside this file (`results-warehouse-<size>.json`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from bench_batch import AS_OF, SIZES, data_files  # noqa: E402

from leadscore import load_model, score_many  # noqa: E402
from leadscore.engine.batch.postgres import compiled_sql  # noqa: E402
from leadscore.engine.batch.schema import SCORE_SCHEMA as SCORES  # noqa: E402
from leadscore.io.databases import (  # noqa: E402
    KEY,
    copy_rows,
    create_postgres_table,
    upsert_sql,
)

SCHEMA = "bench_warehouse"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def backend_cpu(connection: Any) -> float:
    """CPU seconds (user + system) the PostgreSQL backend serving `connection` has spent."""
    pid = connection.info.backend_pid
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@contextmanager
def step(record: dict[str, Any], name: str, connection: Any) -> Iterator[None]:
    """Time a step: wall, this process's CPU, the CPU of `connection`'s backend."""
    wall, cpu, server = time.perf_counter(), cpu_self(), backend_cpu(connection)
    yield
    record[name] = {"wall": round(time.perf_counter() - wall, 3),
                    "cpu": round(cpu_self() - cpu, 3),
                    "server_cpu": round(backend_cpu(connection) - server, 3)}
    print(f"  {name}: {record[name]}", file=sys.stderr, flush=True)


def connect(url: str) -> Any:
    """A connection without parallel workers: the backend's CPU is then all the server's."""
    connection = psycopg.connect(url, autocommit=True)
    connection.execute("SET max_parallel_workers_per_gather = 0")
    return connection


def load(url: str, events: Path, leads: Path) -> None:
    """The Parquet files into SCHEMA.events / SCHEMA.leads (COPY, batch by batch)."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        connection.execute(f"CREATE SCHEMA {SCHEMA}")
    for name, path in (("events", events), ("leads", leads)):
        started = time.perf_counter()
        table_name = f"{SCHEMA}.{name}"
        source = pq.ParquetFile(path)
        with psycopg.connect(url) as connection:
            create_postgres_table(connection, table_name, source.schema_arrow)
            for batch in source.iter_batches(batch_size=500_000):
                copy_rows(connection, table_name, pa.Table.from_batches([batch]))
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f"ANALYZE {table_name}")
        print(f"loaded {name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def export(connection: Any, name: str, target: Path, schema: pa.Schema) -> None:
    """COPY a table TO STDOUT as CSV, read by pyarrow with the source's types, to Parquet."""
    buffer = io.BytesIO()
    with connection.cursor() as cursor, cursor.copy(
            f"COPY {SCHEMA}.{name} TO STDOUT WITH (FORMAT csv, HEADER true)") as copy:
        for chunk in copy:
            buffer.write(chunk)
    buffer.seek(0)
    types = {f.name: f.type for f in schema}
    table = pacsv.read_csv(buffer, convert_options=pacsv.ConvertOptions(
        column_types=types, strings_can_be_null=True))
    pq.write_table(table, target)


def in_database(url: str, models: list[Any]) -> dict[str, Any]:
    """`score_into`'s two steps on one connection: the compiled statement into a temp table,
    then the scores table's rows replaced by it."""
    record: dict[str, Any] = {}
    with connect(url) as connection:
        with step(record, "score in PostgreSQL (the compiled statement)", connection):
            sql = compiled_sql(connection, models, f"{SCHEMA}.events", f"{SCHEMA}.leads",
                               AS_OF).rstrip().rstrip(";")
            connection.execute(f"CREATE TEMP TABLE new_scores AS {sql}")
        with step(record, "replace the scores table's rows", connection), \
                connection.transaction():
            create_postgres_table(connection, f"{SCHEMA}.scores", SCORES, key=KEY)
            connection.execute(f"DELETE FROM {SCHEMA}.scores")
            connection.execute(upsert_sql(f"{SCHEMA}.scores", "new_scores",
                                          list(SCORES.names)))
        [(rows,)] = connection.execute("SELECT count(*) FROM new_scores").fetchall()
    record["rows"] = rows
    return record


def exported(url: str, models: list[Any], events_schema: pa.Schema,
             leads_schema: pa.Schema) -> dict[str, Any]:
    record: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder, connect(url) as connection:
        events, leads = Path(folder) / "events.parquet", Path(folder) / "leads.parquet"
        with step(record, "export to Parquet (COPY TO, CSV → Parquet)", connection):
            export(connection, "events", events, events_schema)
            export(connection, "leads", leads, leads_schema)
        with step(record, "score with DuckDB (score_many)", connection):
            scores = score_many(models, str(events), str(leads), as_of=AS_OF)
        with step(record, "write the scores back (COPY, replace)", connection), \
                connection.transaction():
            table = scores.drop_columns(["interests"])
            create_postgres_table(connection, f"{SCHEMA}.scores_duckdb", table.schema,
                                  key=KEY)
            connection.execute(f"DELETE FROM {SCHEMA}.scores_duckdb")
            copy_rows(connection, f"{SCHEMA}.scores_duckdb", table)
    record["rows"] = scores.num_rows
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="10m", choices=sorted(SIZES))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", default=os.environ.get(
        "LEADSCORE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--model", type=Path, default=HERE / "model-17.yaml")
    parser.add_argument("--skip-load", action="store_true",
                        help="the tables are loaded already (a run before)")
    parser.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    args = parser.parse_args(argv)
    events, leads = data_files(args.size)
    if not args.skip_load:
        load(args.db, events, leads)
    models = [load_model(args.model)]
    events_schema = pq.read_schema(events)
    leads_schema = pq.read_schema(leads)
    runs: dict[str, list[dict[str, Any]]] = {"in-database": [], "export+duckdb": []}
    contenders: dict[str, Callable[[], dict[str, Any]]] = {
        "in-database": lambda: in_database(args.db, models),
        "export+duckdb": lambda: exported(args.db, models, events_schema, leads_schema)}
    for number in range(args.runs):
        for name, run in contenders.items():
            print(f"run {number + 1}: {name}", file=sys.stderr)
            wall, cpu = time.perf_counter(), cpu_self()
            record = run()
            record["total"] = {"wall": round(time.perf_counter() - wall, 3),
                               "cpu": round(cpu_self() - cpu, 3),
                               "server_cpu": round(sum(v["server_cpu"] for k, v in
                                                       record.items() if k != "rows"), 3)}
            runs[name].append(record)
    summary = {name: {key: {m: statistics.median(r[key][m] for r in records)
                            for m in ("wall", "cpu", "server_cpu") if m in records[0][key]}
                      for key in records[0] if key != "rows"}
               for name, records in runs.items()}
    entry = {"size": args.size, "events": SIZES[args.size][0], "leads": SIZES[args.size][1],
             "model": args.model.name, "as_of": AS_OF, "runs": runs, "median": summary,
             "rows": {name: records[0]["rows"] for name, records in runs.items()},
             "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                         "load": os.getloadavg(), "postgres": server_version(args.db)},
             "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                                      capture_output=True, text=True).stdout.strip(),
             "measured": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())}
    out = HERE / f"results-warehouse-{args.size}.json"
    out.write_text(json.dumps(entry, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    if not args.keep:
        with psycopg.connect(args.db, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    return 0


def server_version(url: str) -> str:
    with psycopg.connect(url) as connection:
        return str(connection.execute("SHOW server_version").fetchone()[0])


if __name__ == "__main__":
    raise SystemExit(main())
