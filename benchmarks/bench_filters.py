"""What the filters (#19) cost batch scoring, side by side in one process, runs alternated:

- `plain`: `generate.py`'s events, no user-agent or address columns (the filters cannot
  apply: nothing to read, no cost);
- `off`: the same events with `user_agent` and `ip` columns, every filter off
  (`Filters(bots=False, link_scanners=False)`: the distinct (agent, ip) scan, nothing caught);
- `on`: the same with the defaults plus an office range and an internal domain
  (`Filters(ips=[…], internal_domains=[…])`): ~3 % of events caught and joined out.

    python benchmarks/bench_filters.py --events 1_000_000 --leads 100_000 --runs 3

Agents: 2,000 distinct (1,940 browser variants, 60 from bots.txt, ~3 % of events); addresses:
20,000 distinct (1 % in 10.0.0.0/8). Prints medians of wall and CPU seconds and the ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from generate import AS_OF_US, write_events, write_leads

from leadscore.engine.batch import score_many
from leadscore.errors import FilteredEventsWarning
from leadscore.filters import Filters
from leadscore.filters.agents import read_list
from leadscore.model.loader import load_model

BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) " \
          "Chrome/126.0.{}.0 Safari/537.36"


def with_context(events: Path, out: Path, seed: int = 7) -> None:
    table = pq.read_table(events)
    rng = np.random.default_rng(seed)
    bots = [line.strip("^$") + "/1.0" for line in read_list("bots.txt")][:60]
    agents = np.array([BROWSER.format(i) for i in range(1940)] + bots, dtype=object)
    weights = np.concatenate([np.full(1940, 0.97 / 1940), np.full(len(bots), 0.03 / len(bots))])
    n = table.num_rows
    agent = agents[rng.choice(len(agents), n, p=weights)]
    host = rng.integers(0, 20_000, n)
    ip = np.where(host < 200, [f"10.0.{h // 256}.{h % 256}" for h in host],
                  [f"198.18.{h // 256 % 256}.{h % 256}" for h in host])
    table = table.append_column("user_agent", pa.array(agent, pa.string()))
    table = table.append_column("ip", pa.array(ip, pa.string()))
    pq.write_table(table, out)


def timed(model: object, events: str, leads: str, filters: Filters) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FilteredEventsWarning)
        score_many(model, events, leads, as_of=AS_OF_US, filters=filters)  # type: ignore[arg-type]
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = load_model(Path(__file__).parent / "model-17.yaml")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        plain, context, leads = root / "plain.parquet", root / "context.parquet", \
            root / "leads.parquet"
        write_events(plain, args.events, args.leads)
        write_leads(leads, args.leads)
        with_context(plain, context)
        cases = {
            "plain": (str(plain), Filters()),
            "off": (str(context), Filters(bots=False, link_scanners=False)),
            "on": (str(context), Filters(ips=["10.0.0.0/8"],
                                         internal_domains=["company1.example"])),
        }
        found: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, (events, filters) in cases.items():
                found[name].append(timed(model, events, str(leads), filters))
    result = {name: {"wall_s": statistics.median(w for w, _ in runs),
                     "cpu_s": statistics.median(c for _, c in runs)}
              for name, runs in found.items()}
    for name in ("off", "on"):
        result[name]["wall_ratio_to_plain"] = result[name]["wall_s"] / result["plain"]["wall_s"]
        result[name]["cpu_ratio_to_plain"] = result[name]["cpu_s"] / result["plain"]["cpu_s"]
    print(json.dumps({"events": args.events, "leads": args.leads, "runs": args.runs,
                      "results": result}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
