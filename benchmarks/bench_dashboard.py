"""Dashboard speed: the leads page with N leads in SQLite (default 100,000).

Fills a store's leads, scores and lead_state tables directly (the dashboard reads only those:
ingesting N leads through the API is another benchmark), then measures
  * the leads page over HTTP (uvicorn, first page, filtered, a deep keyset page, by activity),
  * the keyset query against OFFSET at the same depth,
  * first paint and first contentful paint in Debian's Chromium (if /usr/bin/chromium exists).

    python benchmarks/bench_dashboard.py [--leads 100000] [--db benchmarks/data/dash.db]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import insert, select

from leadscore.api.app import create_app
from leadscore.config import Settings, hash_token
from leadscore.demo.show import MODELS_DIR
from leadscore.service import Service
from leadscore.store import dashboard as queries
from leadscore.store.schema import lead_state, leads, scores
from leadscore.timeutil import US_PER_DAY, now_us

TOKEN = "bench-token"
MODEL = "b2c-art-supplies"


def fill(db: str, n: int) -> None:
    service = Service.open(db, models_dir=MODELS_DIR, background=False)
    rng = random.Random(1)
    now = now_us()
    stages = ["visitor", "subscriber", "lead", "mql", "customer", "advocate"]
    with service.db.begin() as connection:
        for start in range(0, n, 20_000):
            lead_rows, score_rows, state_rows = [], [], []
            for i in range(start, min(n, start + 20_000)):
                lead_id = f"l-{i:07d}"
                fit = rng.choice([0, 6, 10, 16, 20, 26, 30, 36])
                engagement = round(rng.expovariate(1 / 15), 3)
                grade = "A" if fit >= 30 else "B" if fit >= 20 else "C" if fit >= 10 else "D"
                temp = "hot" if engagement >= 50 else "warm" if engagement >= 20 else "cold"
                dq = rng.random() < 0.03
                lead_rows.append({"id": lead_id, "traits": {
                    "email": f"person{i}@example.org", "first_name": f"First{i}",
                    "last_name": f"Last{i}", "segment": "consumer"},
                    "account_id": None, "merged_into": None, "created_at": now,
                    "updated_at": now})
                score_rows.append({
                    "lead_id": lead_id, "model": MODEL, "model_version": 1, "fit": fit,
                    "engagement": engagement, "score": fit + engagement, "grade": grade,
                    "temperature": "dead" if dq else temp, "stage": rng.choice(stages),
                    "mql": fit + engagement >= 50 and not dq, "disqualified": dq,
                    "disqualify_reason": "student" if dq else None, "purchases": 0,
                    "customer_since": None, "as_of": now,
                    "reasons": [{"rule": "core age band", "kind": "fit", "points": fit,
                                 "matched": 1, "counted": 1, "last_at": None, "detail": None}]})
                state_rows.append({"lead_id": lead_id, "model": MODEL, "model_version": 1,
                                   "latest": now - rng.randrange(120 * US_PER_DAY),
                                   "state": {}, "updated_at": now})
            connection.execute(insert(leads), lead_rows)
            connection.execute(insert(scores), score_rows)
            connection.execute(insert(lead_state), state_rows)
        connection.exec_driver_sql("ANALYZE")
    service.close()


def timed(call: object, repeat: int = 7) -> tuple[float, float]:
    """Median and best wall time in ms."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--db", default="benchmarks/data/dash.db")
    args = parser.parse_args()
    path = Path(args.db)
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in path.parent.glob(path.name + "*"):
        old.unlink()
    db = f"sqlite:///{path.resolve()}"
    started = time.perf_counter()
    fill(db, args.leads)
    print(f"filled {args.leads:,} leads in {time.perf_counter() - started:.1f} s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    service = Service.open(db, models_dir=MODELS_DIR)
    with service.db.read() as connection:
        f = queries.LeadFilter(model=MODEL)
        deep = None
        for _ in range(200):        # walk 200 pages of 50 = 10,000 rows deep
            deep = queries.list_page(connection, f, limit=50,
                                     cursor=deep.next_cursor if deep else None)
        assert deep is not None
        cursor = deep.next_cursor

        def keyset() -> None:
            queries.list_page(connection, f, limit=50, cursor=cursor)

        def offset() -> None:      # the same page by OFFSET, with the same capped count
            queries.count(connection, f)
            connection.execute(select(scores.c.lead_id).join(
                leads, leads.c.id == scores.c.lead_id).where(scores.c.model == MODEL).order_by(
                scores.c.score.desc(), scores.c.lead_id.desc()).limit(50).offset(10_050)).all()

        print(f"page 202 (rows 10,051-10,100), query + capped count: keyset "
              f"{timed(keyset)[0]:.1f} ms median; OFFSET 10,050: "
              f"{timed(offset)[0]:.1f} ms median")

    settings = Settings(db=db, models_dir=str(MODELS_DIR), admin_token_sha256=hash_token(TOKEN),
                        log_requests=False, log_level="warning")
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings, service), port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base)
    client.post("/dashboard/login", data={"token": TOKEN, "next": "/dashboard/"})
    cursor_q = f"cursor={cursor}"
    for label, url in (("leads page 1", "/dashboard/"),
                       ("grade A, hot", "/dashboard/?grade=A&temperature=hot"),
                       ("page 202 (keyset)", f"/dashboard/?{cursor_q}"),
                       ("by last activity", "/dashboard/?sort=activity"),
                       ("text search", "/dashboard/?q=person99999"),
                       ("pipeline", "/dashboard/pipeline"),
                       ("model page", f"/dashboard/models/{MODEL}")):
        median, best = timed(lambda url=url: client.get(url).raise_for_status(), 5)
        print(f"GET {label:<20} {median:7.1f} ms median, {best:7.1f} ms best")
    paint(base)
    server.should_exit = True


def paint(base: str) -> None:
    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        print("no Chromium: first paint not measured")
        return
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=args)
        page = browser.new_page()
        page.goto(base + "/dashboard/login")
        page.fill("#token", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_selector("table.leads")
        results = []
        for _ in range(5):
            page.goto(base + "/dashboard/")
            page.wait_for_function("performance.getEntriesByType('paint').length > 0",
                                   timeout=10_000)
            results.append(page.evaluate(
                "() => Object.fromEntries(performance.getEntriesByType('paint')"
                ".map(e => [e.name, e.startTime]))"))
        fp = statistics.median(r.get("first-paint", float("nan")) for r in results)
        fcp = statistics.median(r.get("first-contentful-paint", float("nan")) for r in results)
        print(f"Chromium, leads page: first paint {fp:.0f} ms, first contentful paint "
              f"{fcp:.0f} ms (median of 5, from navigation start)")
        browser.close()


if __name__ == "__main__":
    main()
