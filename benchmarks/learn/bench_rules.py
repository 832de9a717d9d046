"""Per-rule analysis of `evaluate`, side by side: the per-rule columns of one scoring run
(`score_rules`, now) against scoring the model once plus once per rule alone (before).

    python benchmarks/learn/bench_rules.py --events benchmarks/data/events-10m.parquet \
        --leads benchmarks/data/leads-1m.parquet

Both in one process on the same DuckDB connection, inputs read once beforehand; wall and CPU
seconds (all threads) of each; the fired-lead counts are checked equal before reporting.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from leadscore import load_model
from leadscore.engine.batch import connect, score_many, score_rules
from leadscore.engine.sql.plan import rule_column
from leadscore.io.readers import read_events, read_leads
from leadscore.learn.backtest import rule_models

HERE = Path(__file__).parent


def timed(fn):  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="benchmarks/data/events-10m.parquet")
    parser.add_argument("--leads", default="benchmarks/data/leads-1m.parquet")
    parser.add_argument("--model", default=str(HERE.parent / "model-17.yaml"))
    parser.add_argument("--as-of", default="2026-05-31T00:00:00Z")
    args = parser.parse_args()
    model = load_model(args.model)
    con = connect()
    read_events(args.events, con, name="ev_in")
    read_leads(args.leads, con, name="ld_in")
    con.sql("CREATE TEMP TABLE ld AS SELECT * FROM ld_in")
    record: dict[str, object] = {"events": args.events, "load_before": os.getloadavg()[0]}
    one, wall, cpu = timed(lambda: score_rules(model, "ev_in", "ld", as_of=args.as_of, con=con))
    record.update(one_pass_wall_s=round(wall, 1), one_pass_cpu_s=round(cpu, 1))

    def per_rule() -> dict[str, int]:
        score_many(model, "ev_in", "ld", as_of=args.as_of, con=con)
        fired = {}
        for name, kind, single in rule_models(model):
            table = score_many(single, "ev_in", "ld", as_of=args.as_of, con=con)
            column = "disqualified" if kind == "disqualify" else "score"
            values = table.column(column).to_pylist()
            fired[name] = sum(1 for v in values if (v if kind == "disqualify" else v != 0))
        return fired

    before, wall, cpu = timed(per_rule)
    record.update(per_rule_runs_wall_s=round(wall, 1), per_rule_runs_cpu_s=round(cpu, 1),
                  rules=len(before), load_after=os.getloadavg()[0])
    frame = one.to_pandas()
    for i, rule in enumerate(model.fit):
        kind = "disqualify" if rule.disqualify else "fit"
        column = frame[rule_column(kind, i)]
        got = int(column.sum()) if kind == "disqualify" else int((column != 0).sum())
        assert got == before[rule.name], (rule.name, got, before[rule.name])
    for i, rule in enumerate(model.engagement.rules):
        got = int((frame[rule_column("engagement", i)] != 0).sum())
        assert got == before[rule.name], (rule.name, got, before[rule.name])
    print(json.dumps(record))
    with (HERE / "rules.jsonl").open("a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
