"""The stream stage's cost on DuckDB: the same world scored from canonical tables and from the
`messages` relation (identify, alias, group, track, page), both already in memory (the JSON
parsed), side by side.

    python benchmarks/bench_stream.py                 # 1M events, 100k leads, 3 runs each
    python benchmarks/bench_stream.py --size 10m --runs 3

The messages come from benchmarks/generate.py's Parquet world (generated when missing): one
identify per lead with its traits; a fifth of the leads (of the leads table) browse
anonymously first (their events
before the first third of their history carry `anonymousId` only, and an identify with both
ids links them); one lead in twenty has an earlier user id it is aliased from; one in ten
joins an account with a group call. Both contenders score model-17 as of the world's as_of in
the same process and connection, alternating; the lead scores must agree (fit, engagement,
score) before any figure is printed. Wall and CPU seconds (process time) per run; medians.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
DATA = HERE / "data"
AS_OF = "2026-06-30T00:00:00Z"
SIZES = {"1m": ("1m", "100k"), "10m": ("10m", "1m")}


def messages_sql(events: str, leads: str) -> str:
    """The messages relation of the world, in DuckDB SQL."""
    return f"""
    WITH ev AS (
      SELECT *, row_number() OVER () AS n,
             percent_rank() OVER (PARTITION BY lead_id ORDER BY "timestamp") AS pr,
             hash(lead_id) % 5 = 0 AND lead_id IN (
               SELECT lead_id FROM read_parquet('{leads}')) AS anon_first
      FROM read_parquet('{events}')),
    ld AS (SELECT *, hash(lead_id) AS h FROM read_parquet('{leads}')),
    first_seen AS (SELECT lead_id, min("timestamp") AS t0 FROM ev GROUP BY lead_id)
    SELECT 'e' || n AS message_id, type,
           CASE WHEN anon_first AND pr < 0.34 THEN NULL ELSE lead_id END AS user_id,
           CASE WHEN anon_first AND pr < 0.34 THEN 'anon-' || lead_id END AS anonymous_id,
           CAST(NULL AS VARCHAR) AS previous_id, "timestamp", event, path,
           CAST(NULL AS VARCHAR) AS account_id,
           email_id AS "properties.email_id", topic AS "properties.topic",
           revenue AS "properties.revenue",
           CAST(NULL AS VARCHAR) AS "traits.email", CAST(NULL AS BIGINT) AS "traits.age",
           CAST(NULL AS VARCHAR) AS "traits.job_title", CAST(NULL AS VARCHAR) AS "traits.country",
           CAST(NULL AS BIGINT) AS "traits.employees", CAST(NULL AS VARCHAR) AS "traits.industry",
           CAST(NULL AS BIGINT) AS "account.employees", CAST(NULL AS VARCHAR) AS "account.industry"
    FROM ev
    UNION ALL BY NAME
    SELECT 'i' || ld.lead_id AS message_id, 'identify' AS type, ld.lead_id AS user_id,
           CASE WHEN ld.h % 5 = 0 THEN 'anon-' || ld.lead_id END AS anonymous_id,
           coalesce(f.t0, TIMESTAMPTZ '2026-01-01 00:00:00+00') AS "timestamp",
           email AS "traits.email", age AS "traits.age", job_title AS "traits.job_title",
           country AS "traits.country", employees AS "traits.employees",
           industry AS "traits.industry"
    FROM ld LEFT JOIN first_seen AS f USING (lead_id)
    UNION ALL BY NAME
    SELECT 'a' || lead_id AS message_id, 'alias' AS type, lead_id AS user_id,
           'old-' || lead_id AS previous_id, TIMESTAMPTZ '2026-01-02 00:00:00+00' AS "timestamp"
    FROM ld WHERE h % 20 = 1
    UNION ALL BY NAME
    SELECT 'g' || lead_id AS message_id, 'group' AS type, lead_id AS user_id,
           'acct-' || (h % 5000) AS account_id, TIMESTAMPTZ '2026-01-03 00:00:00+00' AS "timestamp",
           employees AS "account.employees", industry AS "account.industry"
    FROM ld WHERE h % 10 = 2
    """


def worker(size: str, runs: int) -> dict[str, object]:
    import duckdb  # noqa: F401

    from leadscore.engine.batch import connect, score_many
    from leadscore.model import load_model

    ev_name, ld_name = SIZES[size]
    events = DATA / f"events-{ev_name}.parquet"
    leads = DATA / f"leads-{ld_name}.parquet"
    model = load_model(HERE / "model-17.yaml")
    con = connect()
    con.sql(f"CREATE TABLE msgs AS {messages_sql(str(events), str(leads))}")
    [(n_messages,)] = con.sql("SELECT count(*) FROM msgs").fetchall()
    from leadscore.io.readers import read_events, read_leads
    read_events(str(events), con, name="ev_view")
    read_leads(str(leads), con, name="ld_view")
    con.sql("CREATE TABLE canon_events AS SELECT * FROM ev_view")
    con.sql("CREATE TABLE canon_leads AS SELECT * FROM ld_view")
    results: dict[str, list[tuple[float, float]]] = {"tables": [], "stream": []}
    outputs = {}
    for _ in range(runs):
        for name, args in (("tables", ("canon_events", "canon_leads")),
                           ("stream", ("msgs", None))):
            wall, cpu = time.perf_counter(), time.process_time()
            out = score_many(model, args[0], args[1], as_of=AS_OF, con=con)
            results[name].append((time.perf_counter() - wall, time.process_time() - cpu))
            outputs[name] = out
    a = {r["lead_id"]: r for r in outputs["tables"].select(
        ["lead_id", "fit", "engagement", "score"]).to_pylist()}
    b = {r["lead_id"]: r for r in outputs["stream"].select(
        ["lead_id", "fit", "engagement", "score"]).to_pylist()}
    # anonymous-first leads are the same people (merged); alias ids add nothing scored
    assert set(a) == set(b), (sorted(set(a) - set(b))[:5], sorted(set(b) - set(a))[:5])
    bad = [k for k in a if abs(a[k]["score"] - b[k]["score"]) > 1e-6 or a[k]["fit"] != b[k]["fit"]]
    assert not bad, bad[:5]
    return {"size": size, "messages": n_messages, "leads": len(a),
            "runs": {k: [list(x) for x in v] for k, v in results.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="1m", choices=sorted(SIZES))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--worker", action="store_true")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.size, args.runs)))
        return
    ev_name = SIZES[args.size][0]
    if not (DATA / f"events-{ev_name}.parquet").exists():
        subprocess.run([sys.executable, str(HERE / "generate.py"), "--size", args.size],
                       check=True)
    loadavg = Path("/proc/loadavg")
    load = loadavg.read_text().split()[0] if loadavg.exists() else "?"
    done = subprocess.run([sys.executable, __file__, "--worker", "--size", args.size,
                           "--runs", str(args.runs)], check=True, capture_output=True, text=True)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{args.size}: {found['messages']:,} messages, {found['leads']:,} leads scored; "
          f"{platform.processor() or platform.machine()}, load {load}")
    medians = {}
    for name, runs in found["runs"].items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        medians[name] = (wall, cpu)
        print(f"  {name:<7} wall {wall:7.2f} s  cpu {cpu:7.2f} s   runs "
              + " ".join(f"{r[0]:.2f}/{r[1]:.2f}" for r in runs))
    ratio = medians["stream"][1] / medians["tables"][1]
    print(f"  stream / tables = {ratio:.2f}× CPU, "
          f"{medians['stream'][0] / medians['tables'][0]:.2f}× wall")


if __name__ == "__main__":
    main()
