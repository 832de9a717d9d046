"""A Segment JSON-lines *file* against the same data as Parquet tables, on DuckDB, side by side:
the parse of the JSON timed on its own, then the stream path from the parsed messages against
the table path (`bench_stream.py` times the stage alone, both inputs built in memory).

    python benchmarks/bench_stream_json.py --size 1m --runs 3

From `events-<size>.parquet` and its leads table (generate.py) it writes
`stream-<size>.jsonl`: every event as a `track`/`page` message, one `identify` per lead of the
table (its traits), a `group` call per lead with an industry, and for one lead in five the
events before its median time sent by an anonymous id that an identify (or, one in twenty, an
alias) later links to the person. Scored as of the generator's AS_OF, both paths must give
the same scores (fit equal, engagement within 1e-6) before anything is reported.

Timed, each in a fresh subprocess: `table` = `score_many` on the Parquet events and leads;
`parse` = the JSON read into the `messages` relation (`io.read_messages`: DuckDB, Python for
the lines it cannot read; timed before the copy to Parquet made once for the stream runs;
`--python-parse` also times the Python reader alone); `stream` = the messages loaded from
that Parquet file and scored (the stream stage — dedupe, identity resolution, point-in-time
traits and accounts — then the same plan).
The cost of the stream semantics is `stream / table`. JSON in benchmarks/data/.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
DATA = HERE / "data"
AS_OF = "2026-06-30T00:00:00Z"
LEADS = {"1m": "leads-100k.parquet", "10m": "leads-1m.parquet"}


def write_stream(size: str) -> Path:
    """The stream file of `size` (made once)."""
    import duckdb

    out = DATA / f"stream-{size}.jsonl"
    if out.exists():
        return out
    events, leads = DATA / f"events-{size}.parquet", DATA / LEADS[size]
    con = duckdb.connect()
    con.sql("SET preserve_insertion_order = false")
    con.sql("SET TimeZone = 'UTC'")
    con.sql(f"CREATE TEMP TABLE ev AS SELECT *, hash(lead_id) % 20 AS bucket, "
            f"row_number() OVER () AS n FROM read_parquet('{events}')")
    con.sql("CREATE TEMP TABLE mid AS SELECT lead_id, quantile_disc(timestamp, 0.5) AS mid, "
            "min(timestamp) AS first FROM ev WHERE bucket < 4 GROUP BY lead_id")
    stamp = "strftime(timestamp, '%Y-%m-%dT%H:%M:%S.%fZ')"
    anon = "(e.bucket < 4 AND e.timestamp < m.mid)"
    con.sql(f"""COPY (
        SELECT 'e' || e.n AS messageId, e.type,
               CASE WHEN NOT {anon} THEN e.lead_id END AS userId,
               CASE WHEN {anon} THEN 'anon-' || e.lead_id END AS anonymousId,
               e.event, {stamp.replace('timestamp', 'e.timestamp')} AS timestamp,
               CASE WHEN e.type = 'page' THEN {{'path': e.path}}
                    ELSE {{'email_id': e.email_id, 'topic': e.topic, 'revenue': e.revenue}}
               END AS properties
        FROM ev AS e LEFT JOIN mid AS m USING (lead_id)
        UNION ALL   -- the person's identify naming the anonymous id (one in twenty: an alias)
        SELECT 'l' || lead_id, CASE WHEN hash(lead_id) % 20 = 0 THEN 'alias' ELSE 'identify'
               END, lead_id, CASE WHEN hash(lead_id) % 20 <> 0 THEN 'anon-' || lead_id END,
               NULL, strftime(mid, '%Y-%m-%dT%H:%M:%S.%fZ'), NULL FROM mid
        ) TO '{out}.part' (FORMAT json)""")
    # identify traits and group calls, appended as JSON objects with nested traits
    con.sql(f"""COPY (
        SELECT 't' || lead_id AS messageId, 'identify' AS type, lead_id AS userId,
               '2025-12-31T00:00:00Z' AS timestamp,
               {{'email': email, 'age': age, 'job_title': job_title, 'country': country,
                 'employees': employees}} AS traits
        FROM read_parquet('{leads}')
        UNION ALL
        SELECT 'g' || lead_id, 'group', lead_id, '2026-01-01T00:00:00Z',
               {{'email': NULL, 'age': NULL, 'job_title': NULL, 'country': NULL,
                 'employees': NULL}}
        FROM read_parquet('{leads}') WHERE industry IS NOT NULL
        ) TO '{out}.traits' (FORMAT json)""")
    with open(out, "w") as sink:
        for part in (f"{out}.part", f"{out}.traits"):
            with open(part) as source:
                for line in source:
                    message = json.loads(line)
                    message = {k: v for k, v in message.items() if v is not None}
                    if message.get("type") == "alias":
                        message["previousId"] = "anon-" + message["userId"]
                    if message.get("type") == "group":
                        message["groupId"] = "co-" + message["userId"][-3:]
                        message["traits"] = {"plan": "pro"}
                    sink.write(json.dumps(message) + "\n")
            Path(part).unlink()
    con.close()
    return out


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker(mode: str, size: str) -> dict:
    import duckdb

    import leadscore
    from leadscore.io.readers import read_messages

    model = leadscore.load_model(HERE / "model-17.yaml")
    out: dict = {}
    started = time.perf_counter()
    if mode == "table":
        table = leadscore.score_many([model], str(DATA / f"events-{size}.parquet"),
                                     str(DATA / LEADS[size]), as_of=AS_OF)
    elif mode == "parse":
        con = duckdb.connect()
        report = read_messages(str(DATA / f"stream-{size}.jsonl"), con, name="messages")
        out["messages"] = report.rows
        out["seconds"] = time.perf_counter() - started      # the parse alone, not the copy
        out["cpu"] = _cpu()
        con.sql(f"COPY messages TO '{DATA / f'messages-{size}.parquet'}' (FORMAT parquet)")
        table = None
    elif mode == "parse-python":     # the Python reader alone, for comparison (1M: ~30 CPU s)
        from leadscore.io.segment import message_table

        parsed, _ = message_table(DATA / f"stream-{size}.jsonl", strict=False)
        out["messages"] = parsed.num_rows
        table = None
    else:
        from leadscore.engine.batch import connect

        con = connect()
        con.sql(f"CREATE TEMP TABLE messages AS SELECT * FROM "
                f"read_parquet('{DATA / f'messages-{size}.parquet'}')")
        out["load"] = time.perf_counter() - started
        table = leadscore.score_many([model], "messages", as_of=AS_OF, con=con)
    out.setdefault("seconds", time.perf_counter() - started)
    out.setdefault("cpu", _cpu())
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["loadavg"] = os.getloadavg()[0]
    if table is not None:
        out["rows"] = table.num_rows
        table.select(["lead_id", "fit", "engagement"]).to_pandas().to_parquet(
            DATA / f"out-stream-{mode}-{size}.parquet")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="1m")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--worker", nargs=2)
    parser.add_argument("--python-parse", action="store_true",
                        help="also time the Python reader (slow: ~30 CPU s per 1M messages)")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    import duckdb

    t = time.perf_counter()
    path = write_stream(args.size)
    print(f"{path}: written in {time.perf_counter() - t:.1f} s", file=sys.stderr)

    def run(mode: str) -> dict:
        text = subprocess.run([sys.executable, __file__, "--worker", mode, args.size],
                              check=True, capture_output=True, text=True).stdout
        found = json.loads(text.strip().splitlines()[-1])
        print(mode, json.dumps(found), file=sys.stderr, flush=True)    # progress of long runs
        return found

    parse = run("parse")
    python_parse = run("parse-python") if args.python_parse else None
    runs: dict[str, list[dict]] = {"table": [], "stream": []}
    for _ in range(args.runs):
        for mode in runs:    # interleaved: both see the same machine load
            runs[mode].append(run(mode))
    a, b = (DATA / f"out-stream-{m}-{args.size}.parquet" for m in ("table", "stream"))
    [(worst, fits, rows_a, rows_b)] = duckdb.sql(f"""SELECT max(abs(a.engagement -
        b.engagement)), count(*) FILTER (WHERE a.fit <> b.fit), (SELECT count(*) FROM
        read_parquet('{a}')), (SELECT count(*) FROM read_parquet('{b}'))
        FROM read_parquet('{a}') a JOIN read_parquet('{b}') b USING (lead_id)""").fetchall()
    assert rows_a == rows_b and worst < 1e-6 and fits == 0, (rows_a, rows_b, worst, fits)
    result = {"size": args.size, "parse": parse, "parse_python": python_parse,
              **{m: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
                 for m, rs in runs.items()}}
    result["ratio_seconds"] = result["stream"]["seconds"] / result["table"]["seconds"]
    result["ratio_cpu"] = result["stream"]["cpu"] / result["table"]["cpu"]
    (DATA / f"bench_stream_json-{args.size}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
