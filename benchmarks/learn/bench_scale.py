"""Time `evaluate` and `learn` on the benchmark data (1M leads / 50M events by default).

    python benchmarks/generate.py --events 50_000_000 --leads 1_000_000 \
        --out benchmarks/data/events-50m.parquet --leads-out benchmarks/data/leads-1m.parquet
    python benchmarks/learn/bench_scale.py --events benchmarks/data/events-50m.parquet \
        --leads benchmarks/data/leads-1m.parquet

Outcomes are the first `Order Completed` of each lead (`event:Order Completed`). The events of
generate.py are drawn independently of each other, so the AUCs here are near 0.5: this measures
time, not quality. Writes a JSON line per run to benchmarks/learn/scale.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

from leadscore import load_model
from leadscore.learn.backtest import evaluate
from leadscore.learn.inputs import open_inputs
from leadscore.learn.scorecard import learn

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="benchmarks/data/events-50m.parquet")
    parser.add_argument("--leads", default="benchmarks/data/leads-1m.parquet")
    parser.add_argument("--model", default="benchmarks/model-17.yaml")
    parser.add_argument("--no-rules", action="store_true")
    args = parser.parse_args()
    record: dict[str, object] = {"events": args.events, "leads": args.leads,
                                 "load_before": os.getloadavg()[0]}

    def step(text: str) -> None:
        print(f"{time.perf_counter() - started:7.1f} s  {text}", flush=True)

    started = time.perf_counter()
    data = open_inputs(args.events, args.leads, "event:Order Completed", step=step)
    record["read_s"] = time.perf_counter() - started
    t = time.perf_counter()
    backtest = evaluate([load_model(args.model)], None, None, None,
                        as_of="2026-05-31T00:00:00Z", window_days=30, rules=not args.no_rules,
                        step=step, inputs=data)
    e = backtest.evaluations[0]
    record.update(evaluate_s=time.perf_counter() - t, evaluate_leads=e.leads,
                  evaluate_conversions=e.conversions, evaluate_auc=e.summary["auc"],
                  evaluate_score_s=e.seconds["score"], evaluate_rules_s=e.seconds["rules"],
                  rules=len(e.rules))
    t = time.perf_counter()
    learned = learn(None, None, None, as_of="2026-04-01T00:00:00Z", window_days=30,
                    step=step, inputs=data)
    record.update(learn_s=time.perf_counter() - t, learn_test=learned.test,
                  learn_rules=int(learned.rules["kept"].sum()),
                  total_s=time.perf_counter() - started, load_after=os.getloadavg()[0],
                  cpu_s=resource.getrusage(resource.RUSAGE_SELF).ru_utime
                  + resource.getrusage(resource.RUSAGE_SELF).ru_stime,
                  max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(record, default=float, indent=1))
    with (HERE / "scale.jsonl").open("a") as f:
        f.write(json.dumps(record, default=float) + "\n")


if __name__ == "__main__":
    main()
