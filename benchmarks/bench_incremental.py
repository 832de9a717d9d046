"""Events per second of the incremental engine on one core.

    python benchmarks/bench_incremental.py                 # update_many, 1M events, 3 runs
    python benchmarks/bench_incremental.py --check         # and compare with the pandas baseline
    python benchmarks/bench_incremental.py --call one      # update_one, event by event
    python benchmarks/bench_incremental.py --batch 10000   # update_many in batches of 10,000

The events (in time order, as they would arrive) are turned into `Event` objects and the leads
of the file are identified with their traits before the clock starts; each run times, with a
fresh `Scorer`, `update_many` over the events (the call for a stream of events: it folds them
and returns the handoffs; in batches of `--batch`, default all at once) or `update_one` on each
event (which returns every event's new score). Results go to benchmarks/data/ as JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

import leadscore
from leadscore.engine.incremental import Scorer
from leadscore.events import EVENT_COLUMNS, Event

HERE = Path(__file__).parent
AS_OF_US = 1_782_777_600_000_000   # 2026-06-30T00:00:00Z


def read_events(path: Path, limit: int | None = None) -> list[Event]:
    table = pq.read_table(path)
    if limit is not None:
        table = table.slice(0, limit)
    ts = table["timestamp"].cast("int64").to_pylist()
    cols = {name: table[name].to_pylist() for name in EVENT_COLUMNS if name != "timestamp"}
    props = {name: table[name].to_pylist() for name in table.column_names
             if name not in EVENT_COLUMNS}
    events = []
    for i in range(table.num_rows):
        properties = {k: v[i] for k, v in props.items() if v[i] is not None}
        events.append(Event(cols["lead_id"][i], ts[i], cols["type"][i], cols["event"][i],
                            cols["path"][i], properties))
    return events


def read_traits(path: Path, lead_ids: set[str]) -> dict[str, dict]:
    table = pq.read_table(path)
    table = table.filter(pc.is_in(table["lead_id"], value_set=__import__("pyarrow").array(
        sorted(lead_ids))))
    out = {}
    for row in table.to_pylist():
        lead = row.pop("lead_id")
        out[lead] = {k: v for k, v in row.items() if v is not None}
    return out


def fresh_scorer(model: leadscore.Model, traits: dict[str, dict]) -> Scorer:
    scorer = Scorer(model)
    for lead, values in traits.items():
        scorer.identify(lead, values, as_of=0)
    return scorer


def run(scorer: Scorer, events: list[Event], call: str = "many", batch: int | None = None
        ) -> tuple[float, float, int]:
    """Wall and CPU seconds of `update_many` (or `update_one`) over every event, and the number
    of handoffs raised."""
    gc.collect()
    handoffs = 0
    started, cpu = time.perf_counter(), time.process_time()
    if call == "one":
        update = scorer.update_one
        for event in events:
            for result in update(event):
                handoffs += result.handoff is not None
    else:
        size = batch or len(events)
        for start in range(0, len(events), size):
            handoffs += len(scorer.update_many(events[start:start + size]))
    return time.perf_counter() - started, time.process_time() - cpu, handoffs


def check(scorer: Scorer, model: leadscore.Model, events: Path, leads: Path) -> int:
    sys.path.insert(0, str(HERE))
    import pandas_baseline

    expected = pandas_baseline.score(model, str(events), str(leads)).set_index("lead_id")
    bad = 0
    for s in scorer.scores(as_of=AS_OF_US):
        row = expected.loc[s.lead_id]
        for name in ("fit", "engagement", "score"):
            if abs(getattr(s, name) - row[name]) > 1e-6 * max(1.0, abs(row[name])):
                bad += 1
                if bad <= 10:
                    print(f"  {s.lead_id} {name}: incremental {getattr(s, name)!r} "
                          f"pandas {row[name]!r}", file=sys.stderr)
    return bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=HERE / "model-17.yaml")
    parser.add_argument("--events", type=Path, default=HERE / "data/events-1m.parquet")
    parser.add_argument("--leads", type=Path, default=HERE / "data/leads-100k.parquet")
    parser.add_argument("--limit", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--call", choices=("many", "one"), default="many",
                        help="update_many over the events (default) or update_one per event")
    parser.add_argument("--batch", type=int, default=None,
                        help="events per update_many call (default: all at once)")
    parser.add_argument("--check", action="store_true",
                        help="compare the final scores with the pandas baseline")
    parser.add_argument("--json", type=Path, default=HERE / "data/bench_incremental.json")
    args = parser.parse_args(argv)

    model = leadscore.load_model(args.model)
    events = read_events(args.events, args.limit)
    traits = read_traits(args.leads, {e.lead_id for e in events})
    print(f"{len(events):,} events of {len({e.lead_id for e in events}):,} leads, "
          f"{len(traits):,} with traits", file=sys.stderr)
    seconds, cpu, loads = [], [], []
    handoffs = 0
    scorer = None
    call = f"update_{args.call}" + (f" (batches of {args.batch:,})" if args.batch else "")
    for i in range(args.runs):
        scorer = None
        scorer = fresh_scorer(model, traits)
        wall, used, handoffs = run(scorer, events, args.call, args.batch)
        seconds.append(wall)
        cpu.append(used)
        loads.append(os.getloadavg()[0])
        print(f"  run {i + 1}: {wall:.2f} s ({used:.2f} s CPU), {len(events) / wall:,.0f} "
              f"events/s, {len(events) / used:,.0f} per CPU s, {handoffs:,} handoffs, "
              f"load {loads[-1]:.1f}", file=sys.stderr)
    median = statistics.median(seconds)
    result = {"call": call, "events": len(events), "handoffs": handoffs, "runs_s": seconds,
              "runs_cpu_s": cpu, "loadavg_1m": loads, "median_s": median,
              "events_per_s": len(events) / median,
              "events_per_cpu_s": len(events) / statistics.median(cpu),
              "python": platform.python_version(), "goal_events_per_s": 250_000}
    print(f"{call}: {result['events_per_s']:,.0f} events/s wall, "
          f"{result['events_per_cpu_s']:,.0f} per CPU second (median of {args.runs}; "
          "goal 250,000)")
    if args.check and scorer is not None:
        if args.limit is not None and args.limit < pq.ParquetFile(args.events).metadata.num_rows:
            print("--check needs the whole file (no --limit below its size)", file=sys.stderr)
            return 2
        bad = check(scorer, model, args.events, args.leads)
        result["check_mismatches"] = bad
        print(f"check against pandas: {bad} mismatches")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
