"""Synthetic events and leads for the benchmarks: seeded, fast, written in row groups.

    python benchmarks/generate.py --events 10_000_000 --leads 1_000_000 \
        --out benchmarks/data/events-10m.parquet --leads-out benchmarks/data/leads-1m.parquet

Events span the 180 days that end at AS_OF (2026-06-30T00:00:00Z) and come out in time order.
Activity per lead is zipf-like (a few leads do thousands of things, most do one or two); a small
share of event leads are anonymous (absent from the leads table). Columns:

    lead_id string, timestamp timestamp[us, UTC], type string, event string, path string,
    email_id string, topic string, revenue double

`path` is set on page views only; `email_id` on e-mail opens and clicks; `topic` on most clicks;
`revenue` on orders. The same seed always gives the same files.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

AS_OF = datetime(2026, 6, 30, tzinfo=UTC)
AS_OF_US = int(AS_OF.timestamp()) * 1_000_000
US_PER_DAY = 86_400_000_000

# (type, event name, share of all events). Names are the model's vocabulary.
EVENT_KINDS: tuple[tuple[str, str | None, float], ...] = (
    ("page", None, 0.58),
    ("track", "Email Opened", 0.16),
    ("track", "Email Link Clicked", 0.06),
    ("track", "Content Downloaded", 0.045),
    ("track", "Chat Started", 0.03),
    ("track", "Newsletter Subscribed", 0.025),
    ("track", "Form Submitted", 0.03),
    ("track", "Webinar Attended", 0.02),
    ("track", "Order Completed", 0.025),
    ("track", "Trial Started", 0.01),
    ("track", "Demo Requested", 0.008),
    ("track", "Unsubscribed", 0.007),
)
TOPICS = ("pricing", "security", "integrations", "analytics", "automation", "ai", "mobile",
          "compliance", "onboarding", "case-studies")
TOPIC_MISSING = 0.15          # share of clicks without a topic (rules say `exists: true`)
CAMPAIGN_EVERY_DAYS = 2       # one campaign e-mail every other day

CATEGORIES = ("paper", "paint", "brushes", "canvas", "pens", "markers", "easels", "kits")
CITIES = ("berlin", "hamburg", "munich", "paris", "lyon", "london", "leeds", "madrid",
          "rome", "milan", "vienna", "zurich", "amsterdam", "brussels", "copenhagen", "oslo",
          "stockholm", "helsinki", "warsaw", "prague", "lisbon", "dublin", "new-york",
          "boston", "chicago", "austin", "seattle", "toronto", "sydney", "tokyo")
JOBS = tuple(f"{role}-{i}" for i, role in enumerate(
    ("engineer", "designer", "sales", "support", "marketing") * 4))
DOC_SECTIONS = ("getting-started", "models", "api", "cli", "segments", "programs", "admin",
                "integrations")

JOB_TITLES = ("CEO", "CTO", "VP Marketing", "VP Sales", "Head of Growth", "Director",
              "Marketing Manager", "Sales Manager", "Engineer", "Analyst", "Designer",
              "Consultant", "Intern", "Student", "Recruiter")
JOB_TITLE_SHARE = (0.02, 0.02, 0.03, 0.03, 0.04, 0.07, 0.12, 0.08, 0.18, 0.12, 0.07, 0.07,
                   0.04, 0.07, 0.04)
COUNTRIES = ("US", "DE", "GB", "FR", "CA", "NL", "ES", "IT", "IN", "BR", "JP", "AU", "PL", "SE")
COUNTRY_SHARE = (0.3, 0.14, 0.1, 0.07, 0.05, 0.04, 0.05, 0.05, 0.07, 0.04, 0.03, 0.03, 0.02,
                 0.01)
INDUSTRIES = ("software", "fintech", "retail", "healthcare", "education", "manufacturing",
              "media", "government")
FREE_MAIL = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com")
COMPETITOR = "rival-scoring.example"


def _zipf_weights(n: int, offset: float = 3.0) -> np.ndarray:
    w = 1.0 / (np.arange(n) + offset)
    return w / w.sum()


def page_vocabulary() -> tuple[list[str], np.ndarray]:
    """Page paths and their shares of page views."""
    groups: list[tuple[list[str], float]] = [
        (["/"], 10), (["/pricing"], 6), (["/pricing/enterprise"], 1.5), (["/pricing/faq"], 1),
        (["/about"], 2), (["/contact"], 1.5), (["/search"], 4),
        ([f"/products/{c}/{c}-{i:03d}" for c in CATEGORIES for i in range(60)], 30),
        ([f"/products/{c}" for c in CATEGORIES], 4),
        (["/careers"], 0.6), ([f"/careers/{j}" for j in JOBS], 1.6),
        ([f"/blog/post-{i:04d}" for i in range(400)], 15),
        ([f"/docs/{s}/page-{i:02d}" for s in DOC_SECTIONS for i in range(25)], 10),
        (["/stores"], 0.5), ([f"/stores/{c}" for c in CITIES], 1.8),
    ]
    paths: list[str] = []
    shares: list[np.ndarray] = []
    for members, share in groups:
        paths.extend(members)
        shares.append(_zipf_weights(len(members)) * share)
    p = np.concatenate(shares)
    return paths, p / p.sum()


def lead_ids(n_leads: int, n_anonymous: int) -> pa.Array:
    known = [f"lead-{i:08d}" for i in range(n_leads)]
    anonymous = [f"anon-{i:08d}" for i in range(n_anonymous)]
    return pa.array(known + anonymous, pa.string())


def _take_strings(values: list[str | None], codes: np.ndarray,
                  valid: np.ndarray | None) -> pa.Array:
    """Strings by code; null where `valid` is False. Plain (not dictionary) strings."""
    dictionary = pa.array(values, pa.string())
    index = pa.array(codes.astype(np.int32), mask=None if valid is None else ~valid)
    return dictionary.take(index)


SCHEMA = pa.schema([
    ("lead_id", pa.string()), ("timestamp", pa.timestamp("us", tz="UTC")),
    ("type", pa.string()), ("event", pa.string()), ("path", pa.string()),
    ("email_id", pa.string()), ("topic", pa.string()), ("revenue", pa.float64()),
], metadata={b"leadscore.as_of": AS_OF.isoformat().replace("+00:00", "Z").encode()})


def write_events(out: Path, n_events: int, n_leads: int, *, seed: int = 42, days: int = 180,
                 anonymous_share: float = 0.02, row_group: int = 1_000_000) -> None:
    rng = np.random.default_rng(seed)
    n_anonymous = round(n_leads * anonymous_share)
    ids = lead_ids(n_leads, n_anonymous)
    n_all = n_leads + n_anonymous
    # Zipf-like activity: rank r gets weight 1/(r+100); ranks are shuffled over the ids.
    cdf = np.cumsum(1.0 / (np.arange(n_all) + 100.0))
    cdf /= cdf[-1]
    rank_to_lead = rng.permutation(n_all).astype(np.int32)

    kinds_p = np.array([k[2] for k in EVENT_KINDS])
    kinds_p /= kinds_p.sum()
    kind_types = np.array([0 if k[0] == "page" else 1 for k in EVENT_KINDS], np.int8)
    paths, paths_p = page_vocabulary()
    paths_cdf = np.cumsum(paths_p)
    paths_cdf[-1] = 1.0
    opened = next(i for i, k in enumerate(EVENT_KINDS) if k[1] == "Email Opened")
    clicked = next(i for i, k in enumerate(EVENT_KINDS) if k[1] == "Email Link Clicked")
    ordered = next(i for i, k in enumerate(EVENT_KINDS) if k[1] == "Order Completed")
    n_campaigns = days // CAMPAIGN_EVERY_DAYS + 1
    campaigns = [f"em-{i:04d}" for i in range(n_campaigns)]

    start_us = AS_OF_US - days * US_PER_DAY
    span = days * US_PER_DAY
    n_groups = max(1, -(-n_events // row_group))
    out.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(out, SCHEMA, compression="snappy") as writer:
        for g in range(n_groups):
            lo, hi = g * n_events // n_groups, (g + 1) * n_events // n_groups
            n = hi - lo
            # Time order: group g covers its slice of the period.
            t0 = start_us + span * lo // n_events
            t1 = start_us + span * hi // n_events
            ts = np.sort(rng.integers(t0, t1, n, dtype=np.int64))
            ts = np.minimum(ts, AS_OF_US - 1)
            lead = rank_to_lead[np.searchsorted(cdf, rng.random(n), side="right")
                                .clip(0, n_all - 1)]
            kind = np.searchsorted(np.cumsum(kinds_p), rng.random(n), side="right")
            kind = kind.clip(0, len(EVENT_KINDS) - 1)
            is_page = kind_types[kind] == 0
            path_code = np.searchsorted(paths_cdf, rng.random(n), side="right")
            path_code = path_code.clip(0, len(paths) - 1)
            # Opens and clicks are of a campaign sent on or a few days before the event.
            day = (ts - start_us) // US_PER_DAY
            lag = rng.geometric(0.45, n) - 1
            campaign = np.clip(day // CAMPAIGN_EVERY_DAYS - lag, 0, n_campaigns - 1)
            is_mail = (kind == opened) | (kind == clicked)
            topic = rng.integers(0, len(TOPICS), n)
            has_topic = (kind == clicked) & (rng.random(n) >= TOPIC_MISSING)
            is_order = kind == ordered
            revenue = np.round(rng.lognormal(3.5, 0.8, n), 2)

            columns = [
                ids.take(pa.array(lead)),
                pa.array(ts, pa.timestamp("us", tz="UTC")),
                _take_strings(["page", "track"], kind_types[kind], None),
                _take_strings([k[1] for k in EVENT_KINDS], kind, ~is_page),
                _take_strings(paths, path_code, is_page),
                _take_strings(campaigns, campaign, is_mail),
                _take_strings(list(TOPICS), topic, has_topic),
                pa.array(revenue, pa.float64(), mask=~is_order),
            ]
            writer.write_table(pa.Table.from_arrays(columns, schema=SCHEMA),
                               row_group_size=row_group)


def write_leads(out: Path, n_leads: int, *, seed: int = 42) -> None:
    rng = np.random.default_rng(seed + 1)
    n = n_leads
    ids = lead_ids(n_leads, 0)
    domain_kind = rng.random(n)
    company = rng.integers(0, max(1, n // 20), n)
    free = rng.integers(0, len(FREE_MAIL), n)
    emails = []
    for i in range(n):
        d = domain_kind[i]
        if d < 0.05:
            emails.append(None)
        elif d < 0.053:
            emails.append(f"p{i}@{COMPETITOR}")
        elif d < 0.40:
            emails.append(f"p{i}@{FREE_MAIL[free[i]]}")
        else:
            emails.append(f"p{i}@company{company[i]}.example")

    def nullable(values: np.ndarray, share: float) -> np.ndarray:
        return rng.random(len(values)) < share

    age = rng.normal(41, 12, n).round().clip(16, 85).astype(np.int64)
    job = rng.choice(len(JOB_TITLES), n, p=np.array(JOB_TITLE_SHARE) / sum(JOB_TITLE_SHARE))
    country = rng.choice(len(COUNTRIES), n, p=np.array(COUNTRY_SHARE) / sum(COUNTRY_SHARE))
    employees = np.round(rng.lognormal(4.5, 1.8, n)).astype(np.int64).clip(1, 500_000)
    industry = rng.integers(0, len(INDUSTRIES), n)
    table = pa.table({
        "lead_id": ids,
        "email": pa.array(emails, pa.string()),
        "age": pa.array(age, pa.int64(), mask=nullable(age, 0.08)),
        "job_title": _take_strings(list(JOB_TITLES), job, ~nullable(job, 0.05)),
        "country": _take_strings(list(COUNTRIES), country, ~nullable(country, 0.03)),
        "employees": pa.array(employees, pa.int64(), mask=nullable(employees, 0.10)),
        "industry": _take_strings(list(INDUSTRIES), industry, ~nullable(industry, 0.06)),
    })
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out, row_group_size=1_000_000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/data/events-10m.parquet"))
    parser.add_argument("--leads-out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--anonymous-share", type=float, default=0.02,
                        help="event leads not in the leads table, as a share of --leads")
    parser.add_argument("--row-group", type=int, default=1_000_000)
    parser.add_argument("--partitioned", action="store_true",
                        help="--out is a folder of hive partitions month=YYYY-MM/part-*.parquet")
    parser.add_argument("--distinct-chunks", type=int, default=0, metavar="K",
                        help="with --partitioned: generate K chunks of 50M, hard-link the rest")
    args = parser.parse_args(argv)
    if args.partitioned:
        return _partitioned(args)
    started = time.perf_counter()
    write_events(args.out, args.events, args.leads, seed=args.seed, days=args.days,
                 anonymous_share=args.anonymous_share, row_group=args.row_group)
    print(f"{args.out}: {args.events:,} events in {time.perf_counter() - started:.1f} s",
          file=sys.stderr)
    if args.leads_out is not None:
        started = time.perf_counter()
        write_leads(args.leads_out, args.leads, seed=args.seed)
        print(f"{args.leads_out}: {args.leads:,} leads in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)
    return 0


def _partitioned(args: argparse.Namespace) -> int:
    """Write the events in chunks of 50M (a seed each), each split by month into --out.

    A chunk whose files are already there is kept (an interrupted run resumes). With
    `--distinct-chunks K`, chunks after the first K are hard links to the files of chunk
    `i % K`: the same rows again, at no cost in time or disk — the engine does the same work
    per row, but leads see their history K-fold repeated (limits saturate sooner)."""
    import os

    import duckdb

    chunk = 50_000_000
    args.out.mkdir(parents=True, exist_ok=True)
    distinct = args.distinct_chunks or None
    for i, first in enumerate(range(0, args.events, chunk)):
        if any(args.out.glob(f"month=*/part-{i}-*.parquet")):
            continue
        started = time.perf_counter()
        if distinct is not None and i >= distinct:
            for source in args.out.glob(f"month=*/part-{i % distinct}-*.parquet"):
                os.link(source, source.parent / source.name.replace(
                    f"part-{i % distinct}-", f"part-{i}-", 1))
            continue
        tmp = args.out / f".chunk-{i}.parquet"
        write_events(tmp, min(chunk, args.events - first), args.leads, seed=args.seed + i,
                     days=args.days, anonymous_share=args.anonymous_share,
                     row_group=args.row_group)
        duckdb.sql(f"""COPY (SELECT *, strftime("timestamp", '%Y-%m') AS month
                   FROM read_parquet('{tmp}')) TO '{args.out}' (FORMAT parquet,
                   PARTITION_BY (month), APPEND, FILENAME_PATTERN 'part-{i}-{{uuid}}')""")
        tmp.unlink()
        print(f"{args.out}: chunk {i} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    if args.leads_out is not None:
        write_leads(args.leads_out, args.leads, seed=args.seed)
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
