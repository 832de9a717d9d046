"""Where the batch engine's time goes: input checks, the plan, and DuckDB's per-operator profile.

    python benchmarks/profile_batch.py [--size 10m] [--operators 15]

Times each step of `score_many` separately on one connection (reading and checking the events,
the leads, then running the compiled plan) and prints the slowest operators of the plan from
DuckDB's profiler. A diagnostic for the engine's authors, not a benchmark: run bench_batch.py
for the figures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import sys
import time
from pathlib import Path

from sqlglot import exp

import leadscore
from leadscore.engine.batch import connect
from leadscore.engine.batch.inputs import table_columns as _table_columns
from leadscore.engine.sql.plan import PlanOptions, compile_plan
from leadscore.io.readers import read_events, read_leads
from leadscore.timeutil import parse_timestamp

HERE = Path(__file__).parent
_sequence = itertools.count()
AS_OF = "2026-06-30T00:00:00Z"


def _operators(node: dict, out: list) -> None:
    """(seconds, name, rows, extra) of every operator; DuckDB 1.x and 2.x JSON profiles."""
    name = node.get("operator_name") or node.get("name") or node.get("operator_type")
    timing = node.get("operator_timing", node.get("timing"))
    if timing is not None:
        extra = node.get("extra_info") or {}
        rows = node.get("operator_cardinality", node.get("intermediate_rows"))
        out.append((float(timing), str(name).strip(), rows, json.dumps(extra)[:110]))
    for child in node.get("children", []):
        _operators(child, out)


def _cpu() -> float:
    """CPU seconds of this process, all threads (the machine is shared: wall time misleads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="10m")
    parser.add_argument("--leads", default=None)
    parser.add_argument("--model", type=Path, default=HERE / "model-17.yaml")
    parser.add_argument("--operators", type=int, default=15)
    parser.add_argument("--sql", action="store_true", help="print the plan's SQL")
    args = parser.parse_args(argv)
    events = HERE / f"data/events-{args.size}.parquet"
    leads = Path(args.leads) if args.leads else HERE / (
        "data/leads-100k.parquet" if args.size == "1m" else "data/leads-1m.parquet")
    model = leadscore.load_model(args.model)
    con = connect()
    steps: list[tuple[str, float, float]] = []

    started, cpu = time.perf_counter(), _cpu()
    read_events(str(events), con, name="events")
    steps.append(("read + check events", time.perf_counter() - started, _cpu() - cpu))
    started, cpu = time.perf_counter(), _cpu()
    read_leads(str(leads), con, name="leads")
    steps.append(("read + check leads", time.perf_counter() - started, _cpu() - cpu))
    started = time.perf_counter()
    plan = compile_plan(model, _table_columns(con, "events"), _table_columns(con, "leads"),
                        parse_timestamp(AS_OF),
                        options=PlanOptions(events_table="events", leads_table="leads",
                                            lead_key="hash", order=False))
    # As batch._run does: the ev CTE staged as a temporary table, the rest one query.
    ctes = plan.args["with_"].expressions
    ev = next(cte for cte in ctes if cte.alias == "ev")
    staged = f"__ev_{next(_sequence)}"
    plan.args["with_"].set("expressions", [cte for cte in ctes if cte is not ev])
    for table in plan.find_all(exp.Table):
        if table.name == "ev":
            table.set("this", exp.to_identifier(staged, quoted=True))
    stage_sql = f'CREATE TEMP TABLE "{staged}" AS {ev.this.sql(dialect="duckdb")}'
    sql = plan.sql(dialect="duckdb")
    steps.append(("compile plan", time.perf_counter() - started, 0.0))
    if args.sql:
        print(stage_sql + ";\n" + sql)
    started, cpu = time.perf_counter(), _cpu()
    con.sql(stage_sql)
    steps.append(("stage ev", time.perf_counter() - started, _cpu() - cpu))
    started, cpu = time.perf_counter(), _cpu()
    con.sql(sql).to_arrow_table()
    steps.append(("run plan", time.perf_counter() - started, _cpu() - cpu))

    profile = Path("/tmp/leadscore-profile.json")
    con.sql("PRAGMA enable_profiling = 'json'")
    con.sql(f"PRAGMA profiling_output = '{profile}'")
    con.sql(sql).to_arrow_table()
    con.sql("PRAGMA disable_profiling")
    # The machine is shared: say how loaded it was (operator times are wall time per thread).
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} "
          "cores")
    print(f"{'step':24s} {'wall':>7s}   {'cpu':>7s}")
    for step, seconds, cpu_s in steps:
        print(f"{step:24s} {seconds:7.2f} s {cpu_s:7.2f} s")
    operators: list = []
    data = json.loads(profile.read_text())
    for root in data.get("operator", [data]):
        _operators(root, operators)
    cpu = data.get("query", {}).get("cpu_time") or data.get("cpu_time")
    if cpu:
        print(f"plan CPU time {float(cpu):.2f} s")
    total = sum(o[0] for o in operators) or 1.0
    print(f"\nslowest operators of the plan (operator time, summed over threads: {total:.2f} s)")
    for seconds, name, rows, extra in sorted(operators, reverse=True)[:args.operators]:
        print(f"  {seconds:6.2f} s {100 * seconds / total:4.0f}%  {name:22s} {rows!s:>10s}  "
              f"{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
