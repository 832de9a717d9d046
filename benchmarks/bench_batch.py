"""The batch engine against a plain pandas implementation and DuckDB's floor, side by side.

    python benchmarks/bench_batch.py                       # 10M events, 1M leads, 3 runs each
    python benchmarks/bench_batch.py --sizes 10m 50m --runs 3
    python benchmarks/bench_batch.py --base-src /tmp/base/src   # + an older commit, side by side

For each size, every run of every contender is a fresh subprocess (so peak memory is its own):
  ours    `leadscore.engine.batch.score_many` from Parquet (events + leads) to an Arrow table
  pandas  benchmarks/pandas_baseline.py: the same model in plain pandas
  floor   DuckDB reading the columns the model needs and grouping by lead — no scoring at all
  base    (with --base-src) `ours` run from another source tree, e.g. `git archive <commit> src`
          unpacked: the same benchmark for an older commit, interleaved with the new one
Time is measured inside the subprocess around the work (imports excluded); peak memory is the
subprocess's maximum resident set (wait4 rusage), interpreter and imports included. Before any
timing is reported, the first run's scores of `ours` and `pandas` must agree per lead (fit,
engagement, score within 1e-6). Missing data files are generated (benchmarks/generate.py).
Results: a table on stdout and JSON in benchmarks/data/bench_batch.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
DATA = HERE / "data"
AS_OF = "2026-06-30T00:00:00Z"
SIZES = {"1m": (1_000_000, 100_000), "10m": (10_000_000, 1_000_000),
         "50m": (50_000_000, 1_000_000)}
CONTENDERS = ("ours", "pandas", "floor")
# The event columns model-17 reads (the floor reads the same).
FLOOR_SQL = """
SELECT lead_id, count(*) AS events, max("timestamp") AS latest, count("type") AS types,
       count(event) AS names, count(path) AS paths, count(email_id) AS email_ids,
       count(topic) AS topics
FROM read_parquet('{events}') WHERE "timestamp" <= '{as_of}'::TIMESTAMPTZ GROUP BY lead_id
"""


def data_files(size: str) -> tuple[Path, Path]:
    n_events, n_leads = SIZES[size]
    events = DATA / f"events-{size}.parquet"
    leads = DATA / f"leads-{n_leads // 1000}k.parquet" if n_leads < 1_000_000 else \
        DATA / f"leads-{n_leads // 1_000_000}m.parquet"
    if not events.exists() or not leads.exists():
        # Only what is missing: the 10M and 50M sizes share one leads file.
        missing = [f for f in (events, leads) if not f.exists()]
        print(f"generating {' and '.join(f.name for f in missing)} …", file=sys.stderr)
        command = [sys.executable, str(HERE / "generate.py"), "--events", str(n_events),
                   "--leads", str(n_leads), "--out", str(events)]
        if not leads.exists():
            command += ["--leads-out", str(leads)]
        subprocess.run(command, check=True)
    return events, leads


# ---- the worker: one contender, one run, in its own process ---------------------------------

def worker(contender: str, model_path: str, events: str, leads: str, save: str | None) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    import leadscore

    model = leadscore.load_model(model_path)
    if contender == "ours":
        from leadscore.engine.batch import score_many

        started = time.perf_counter()
        table = score_many([model], events, leads, as_of=AS_OF)
        seconds = time.perf_counter() - started
        rows = table.num_rows
    elif contender == "pandas":
        sys.path.insert(0, str(HERE))
        import pandas_baseline

        started = time.perf_counter()
        frame = pandas_baseline.score(model, events, leads)
        seconds = time.perf_counter() - started
        rows = len(frame)
        table = pa.Table.from_pandas(frame, preserve_index=False)
    elif contender == "floor":
        import duckdb

        con = duckdb.connect()
        started = time.perf_counter()
        table = con.sql(FLOOR_SQL.format(events=events.replace("'", "''"), as_of=AS_OF)) \
            .to_arrow_table()
        seconds = time.perf_counter() - started
        rows = table.num_rows
    else:
        raise SystemExit(f"unknown contender {contender!r}")
    if save:
        pq.write_table(table, save)
    return {"seconds": seconds, "rows": rows}


def spawn(contender: str, model: Path, events: Path, leads: Path,
          save: Path | None, base_src: Path | None = None) -> dict:
    """Run one contender in a fresh process; its time, rows and peak memory."""
    env = None
    if contender == "base":   # `ours` imported from the other source tree
        assert base_src is not None
        env = {**os.environ, "PYTHONPATH": str(base_src)}
        contender = "ours"
    command = [sys.executable, __file__, "--worker", contender, "--model", str(model),
               "--worker-events", str(events), "--worker-leads", str(leads)]
    if save is not None:
        command += ["--worker-save", str(save)]
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{contender} failed (exit {proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    result["wall_s"] = wall
    result["peak_mb"] = usage.ru_maxrss / 1024      # KiB on Linux
    result["cpu_s"] = usage.ru_utime + usage.ru_stime  # whole process, all threads
    result["load_after"] = os.getloadavg()[0]
    return result


# ---- agreement -------------------------------------------------------------------------------

def compare(ours_path: Path, pandas_path: Path, model_name: str) -> list[str]:
    """Problems found comparing the scores per lead (empty: they agree)."""
    import numpy as np
    import pandas as pd

    ours = pd.read_parquet(ours_path)
    if "model" in ours.columns:
        ours = ours[ours["model"] == model_name]
    theirs = pd.read_parquet(pandas_path)
    problems = []
    for name, frame in (("ours", ours), ("pandas", theirs)):
        if frame["lead_id"].duplicated().any():
            problems.append(f"{name}: a lead appears twice")
    both = ours.merge(theirs, on="lead_id", how="outer", suffixes=("_ours", "_pandas"),
                      indicator=True)
    only = both["_merge"].value_counts()
    if only.get("left_only", 0) or only.get("right_only", 0):
        problems.append(f"leads only in ours: {only.get('left_only', 0)}, "
                        f"only in pandas: {only.get('right_only', 0)}")
    both = both[both["_merge"] == "both"]
    for col in ("fit", "engagement", "score"):
        a = both[f"{col}_ours"].astype(float).to_numpy()
        b = both[f"{col}_pandas"].astype(float).to_numpy()
        bad = ~(np.abs(a - b) <= 1e-6 * np.maximum(1.0, np.abs(b)))
        if bad.any():
            worst = both[bad].head(3)[["lead_id", f"{col}_ours", f"{col}_pandas"]]
            problems.append(f"{col}: {int(bad.sum())} leads differ, e.g.\n"
                            f"{worst.to_string(index=False)}")
    for col in ("grade", "temperature", "mql", "disqualified"):
        if f"{col}_ours" in both.columns:
            a = both[f"{col}_ours"].astype(object).where(both[f"{col}_ours"].notna(), None)
            b = both[f"{col}_pandas"].astype(object).where(both[f"{col}_pandas"].notna(), None)
            bad = int((a != b).sum())
            if bad:
                problems.append(f"{col}: {bad} leads differ")
    return problems


# ---- the benchmark -----------------------------------------------------------------------------

def bench(size: str, runs: int, model: Path, contenders: tuple[str, ...],
          check: bool, base_src: Path | None = None) -> dict:
    events, leads = data_files(size)
    model_name = __import__("leadscore").load_model(model).name
    results: dict[str, list[dict]] = {c: [] for c in contenders}
    saved = {c: DATA / f"out-{c}-{size}.parquet" for c in contenders}
    for run in range(runs):
        for contender in contenders:   # interleaved, so drift on a noisy machine hits all
            save = saved[contender] if run == 0 and contender != "floor" else None
            r = spawn(contender, model, events, leads, save, base_src)
            results[contender].append(r)
            print(f"  {size} run {run + 1} {contender:6s} {r['seconds']:7.2f} s "
                  f"{r['peak_mb']:8.0f} MB  cpu {r['cpu_s']:6.1f} s  load {r['load_after']:.1f}"
                  f"  ({r['rows']:,} rows)", file=sys.stderr)
        if run == 0 and check and "ours" in contenders and "pandas" in contenders:
            problems = compare(saved["ours"], saved["pandas"], model_name)
            if problems:
                print("ours and pandas DISAGREE; no timing is reported:", file=sys.stderr)
                for p in problems:
                    print("  " + p, file=sys.stderr)
                raise SystemExit(1)
            print(f"  {size}: ours and pandas agree on every lead", file=sys.stderr)
        if run == 0 and "ours" in contenders and "base" in contenders:
            import pyarrow.parquet as pq

            same = pq.read_table(saved["ours"]).equals(pq.read_table(saved["base"]))
            print(f"  {size}: ours and base give {'the same' if same else 'DIFFERENT'} table",
                  file=sys.stderr)
    summary = {}
    for contender, rs in results.items():
        summary[contender] = {
            "median_s": statistics.median(r["seconds"] for r in rs),
            "runs_s": [r["seconds"] for r in rs],
            "median_wall_s": statistics.median(r["wall_s"] for r in rs),
            "median_cpu_s": statistics.median(r["cpu_s"] for r in rs),
            "load_after": [r["load_after"] for r in rs],
            "peak_mb": max(r["peak_mb"] for r in rs),
            "rows": rs[0]["rows"],
        }
    return {"size": size, "events": SIZES[size][0], "leads": SIZES[size][1],
            "runs": runs, "checked": check, "results": summary}


def _git_state() -> str:
    """The commit benchmarked, and whether the engine's files differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True).stdout
    head = git("rev-parse", "--short", "HEAD").strip()
    dirty = git("status", "--porcelain", "--", "../src/leadscore/engine", "../src/leadscore/io")
    return head + (" + uncommitted engine changes" if dirty.strip() else "")


def report(entry: dict) -> None:
    r = entry["results"]
    print(f"\n{entry['events']:,} events, {entry['leads']:,} leads — median of {entry['runs']}")
    print(f"  {'':8s} {'time s':>8s} {'peak MB':>9s} {'cpu s':>7s}   runs (s)")
    for contender, s in r.items():
        runs = " ".join(f"{x:.2f}" for x in s["runs_s"])
        print(f"  {contender:8s} {s['median_s']:8.2f} {s['peak_mb']:9.0f} "
              f"{s['median_cpu_s']:7.1f}   {runs}")
    def ratio(a: str, b: str) -> str:   # wall and CPU
        return (f"{r[a]['median_s'] / r[b]['median_s']:.2f}× wall, "
                f"{r[a]['median_cpu_s'] / r[b]['median_cpu_s']:.2f}× CPU")
    if "ours" in r and "pandas" in r:
        print(f"  pandas / ours = {ratio('pandas', 'ours')}  (goal ≥ 5×)")
    if "ours" in r and "floor" in r:
        print(f"  ours / floor  = {ratio('ours', 'floor')}  (goal ≤ 1.3×)")
    if "ours" in r and "base" in r:
        print(f"  base / ours   = {ratio('base', 'ours')}")
    if "ours" in r and entry["events"] >= 50_000_000:
        print(f"  ours peak     = {r['ours']['peak_mb'] / 1024:.2f} GiB  (goal < 4 GB)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["10m"], choices=sorted(SIZES))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", type=Path, default=HERE / "model-17.yaml")
    parser.add_argument("--only", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument("--base-src", type=Path, default=None,
                        help="also run `ours` from this source tree (contender 'base')")
    parser.add_argument("--no-check", action="store_true")
    parser.add_argument("--json", type=Path, default=DATA / "bench_batch.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-events", help=argparse.SUPPRESS)
    parser.add_argument("--worker-leads", help=argparse.SUPPRESS)
    parser.add_argument("--worker-save", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, str(args.model), args.worker_events,
                                args.worker_leads, args.worker_save)))
        return 0
    import duckdb
    import pandas
    import pyarrow

    print(f"benchmarking {_git_state()}", file=sys.stderr)
    entries = []
    for size in args.sizes:
        contenders = tuple(args.only) + (("base",) if args.base_src else ())
        entry = bench(size, args.runs, args.model, contenders, not args.no_check,
                      args.base_src.resolve() if args.base_src else None)
        report(entry)
        entries.append(entry)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "python": platform.python_version(), "duckdb": duckdb.__version__,
        "pandas": pandas.__version__, "pyarrow": pyarrow.__version__,
        "cpus": os.cpu_count(), "model": str(args.model), "sizes": entries,
        "load_at_end": os.getloadavg(), "git": _git_state(),
        "base_src": str(args.base_src) if args.base_src else None,
    }, indent=2))
    print(f"\nJSON: {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
