"""`--state` over a Segment message stream: the next day's run from the state (reading only
that day's file) against one run over the whole stream, side by side, on DuckDB.

    python benchmarks/bench_state_stream.py --events 300000 --runs 2

From generate.py's events and leads (made once, in benchmarks/data/) it writes two JSON-lines
files: `history` (every message before the last day) and `day` (the last day). Every event is
a `track`/`page` message; each lead has an identify with its traits at its first event; for
one lead in five the events before its median time are sent by an anonymous id that an
identify at that time links to the person — where that time falls on the last day, the day's
run moves the lead's earlier events (folded under the anonymous id) to the person.

Timed, each in a fresh subprocess (medians over `--runs`): `one` = `score_many` over both
files as of the end; `build` = the state built from `history` as of the day before; `next` =
the day's run from a copy of that state. `next` must equal `one` (every lead, engagement
within 1e-6) before anything is reported.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
DATA = HERE / "data"
AS_OF = "2026-06-30T00:00:00Z"
DAY_BEFORE = "2026-06-29T00:00:00Z"


def prepare(events: int) -> tuple[Path, Path]:
    """The history and day files for `events` events (made once)."""
    import duckdb

    tag = f"{events // 1000}k"
    history, day = DATA / f"sstream-{tag}-history.jsonl", DATA / f"sstream-{tag}-day.jsonl"
    if history.exists() and day.exists():
        return history, day
    DATA.mkdir(exist_ok=True)
    ev, leads = DATA / f"sstream-{tag}.parquet", DATA / f"sstream-{tag}-leads.parquet"
    subprocess.run([sys.executable, str(HERE / "generate.py"), "--events", str(events),
                    "--leads", str(max(events // 10, 1)), "--days", "30", "--out", str(ev),
                    "--leads-out", str(leads)], check=True)
    con = duckdb.connect()
    con.sql("SET TimeZone = 'UTC'")
    con.sql(f"CREATE TEMP TABLE ev AS SELECT *, hash(lead_id) % 5 = 0 AS anon, "
            f"row_number() OVER () AS n FROM read_parquet('{ev}')")
    con.sql("CREATE TEMP TABLE per AS SELECT lead_id, min(timestamp) AS first, "
            "quantile_disc(timestamp, 0.5) AS mid FROM ev GROUP BY lead_id")
    stamp = "strftime({}, '%Y-%m-%dT%H:%M:%S.%fZ')"
    con.sql(f"""CREATE TEMP TABLE msgs AS
        SELECT e.timestamp AS sent, to_json({{
            messageId: 'e' || e.n, type: e.type,
            userId: CASE WHEN NOT (e.anon AND e.timestamp < p.mid) THEN e.lead_id END,
            anonymousId: CASE WHEN e.anon AND e.timestamp < p.mid THEN 'anon-' || e.lead_id END,
            event: e.event, timestamp: {stamp.format('e.timestamp')},
            properties: CASE WHEN e.type = 'page' THEN {{'path': e.path}}::JSON
                             ELSE {{'email_id': e.email_id, 'topic': e.topic,
                                    'revenue': e.revenue}}::JSON END}}) AS line
        FROM ev AS e JOIN per AS p USING (lead_id)
        UNION ALL   -- the person's identify naming the anonymous id, at its median time
        SELECT p.mid, to_json({{messageId: 'l' || p.lead_id, type: 'identify',
                               userId: p.lead_id, anonymousId: 'anon-' || p.lead_id,
                               timestamp: {stamp.format('p.mid')}}})
        FROM per AS p WHERE hash(p.lead_id) % 5 = 0
        UNION ALL   -- traits, at the lead's first event
        SELECT p.first, to_json({{messageId: 't' || l.lead_id, type: 'identify',
                                 userId: l.lead_id, timestamp: {stamp.format('p.first')},
                                 traits: {{email: l.email, age: l.age, job_title: l.job_title,
                                           country: l.country, employees: l.employees}}}})
        FROM read_parquet('{leads}') AS l JOIN per AS p USING (lead_id)""")
    for path, where in ((history, f"sent < TIMESTAMPTZ '{DAY_BEFORE}'"),
                        (day, f"sent >= TIMESTAMPTZ '{DAY_BEFORE}'")):
        rows = con.sql(f"SELECT line FROM msgs WHERE {where} ORDER BY sent").fetchall()
        with path.open("w") as sink:
            for (line,) in rows:
                message = {k: v for k, v in json.loads(line).items() if v is not None}
                sink.write(json.dumps(message) + "\n")
    con.close()
    return history, day


def worker(mode: str, history: str, day: str, state: str) -> dict:
    import leadscore
    from leadscore.engine.batch import connect
    from leadscore.engine.batch.state import score_stream_with_state
    from leadscore.timeutil import parse_timestamp

    model = leadscore.load_model(HERE / "model-17.yaml")
    started = time.perf_counter()
    out: dict = {}
    con = connect()
    if mode == "one":
        both = str(Path(history).with_name(Path(history).name.replace("-history", "-*")))
        table = leadscore.score_many([model], both, as_of=AS_OF, con=con)
    else:
        files, as_of = (history, DAY_BEFORE) if mode == "build" else (day, AS_OF)
        table, report = score_stream_with_state(model, files, None, parse_timestamp(as_of),
                                                state, con)
        out["report"] = [report.mode, report.reason]
    out["seconds"] = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["cpu"] = usage.ru_utime + usage.ru_stime
    out["peak_mb"] = usage.ru_maxrss / 1024
    out["rows"] = table.num_rows
    out["scores"] = {r["lead_id"]: r["engagement"] for r in table.to_pylist()}
    return out


def spawn(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", *args], check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--worker", nargs=4)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    history, day = prepare(args.events)
    state = DATA / "sstream-state"
    results: dict[str, list[dict]] = {"one": [], "build": [], "next": []}
    for _ in range(args.runs):
        shutil.rmtree(state, ignore_errors=True)
        results["one"].append(spawn("one", str(history), str(day), str(state)))
        results["build"].append(spawn("build", str(history), str(day), str(state)))
        shutil.copytree(state, state.with_name("sstream-state-built"), dirs_exist_ok=True)
        results["next"].append(spawn("next", str(history), str(day), str(state)))
        shutil.rmtree(state)
        shutil.copytree(state.with_name("sstream-state-built"), state)
    one, nxt = results["one"][-1]["scores"], results["next"][-1]["scores"]
    assert one.keys() == nxt.keys(), (len(one), len(nxt))
    assert all(abs(one[k] - nxt[k]) <= 1e-6 * max(1.0, abs(one[k])) for k in one)
    lines = sum(1 for _ in history.open()) + sum(1 for _ in day.open())
    day_lines = sum(1 for _ in day.open())
    print(f"{lines:,} messages ({day_lines:,} on the last day), {len(one):,} leads; "
          f"equal scores: yes; next day's report: {results['next'][-1]['report']}")
    print("| run | median wall s | median CPU s | peak MB | runs (wall) |")
    print("|---|---:|---:|---:|---|")
    for name, runs in results.items():
        wall = statistics.median(r["seconds"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        peak = max(r["peak_mb"] for r in runs)
        walls = " ".join(f"{r['seconds']:.1f}" for r in runs)
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {peak:,.0f} | {walls} |")
    ratio = statistics.median(r["cpu"] for r in results["next"]) / statistics.median(
        r["cpu"] for r in results["one"])
    print(f"next / one (CPU): {ratio:.0%}")


if __name__ == "__main__":
    main()
