"""A world with planted effects: who converts, and when, is drawn from a known formula.

`generate_planted_world(seed)` makes B2B leads (traits: job level, industry, employees, country,
e-mail), their events over `days` days, and the day each lead converted (an `Order Completed`
event and a row of `outcomes`). A lead's daily chance to convert is

    logit p(day) = base + Σ fit effects of its traits + Σ β · x(day)

where each x is a decayed count of one kind of event before that day (half-life
`HALF_LIFE_DAYS`), counted as an engagement rule with the same `limit` would count it. The
effects are in `PLANTED`; some traits and events have no effect at all (noise), so a learner that
recovers the truth gives them (nearly) no points. Seeded and vectorised: the same seed gives the
same world on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from leadscore.timeutil import iso, parse_timestamp

AS_OF = "2026-07-01T00:00:00Z"
US_PER_DAY = 86_400_000_000
HALF_LIFE_DAYS = 21.0


@dataclass(frozen=True)
class Kind:
    """One kind of event: how it is written, how often leads do it, how it moves conversion."""

    name: str                 # the rule name a learner should find
    type: str                 # track | page
    value: str                # the event name, or the page path
    limit: str | None         # how the planted feature counts it: once | daily | None (every)
    rate: float               # mean events per lead-day for an average lead
    effect: float             # log-odds per unit of the decayed count


KINDS: tuple[Kind, ...] = (
    Kind("demo requested", "track", "Demo Requested", "once", 0.0015, 3.0),
    Kind("pricing page", "page", "/pricing", "daily", 0.02, 0.8),
    Kind("webinar attended", "track", "Webinar Attended", "daily", 0.01, 0.35),
    Kind("careers page", "page", "/careers", "once", 0.008, -1.5),
    Kind("blog", "page", "/blog", None, 0.05, 0.0),                       # noise
    Kind("newsletter subscribed", "track", "Newsletter Subscribed", "once", 0.004, 0.0),  # noise
)
# Fit effects: (trait, value, log-odds). Traits not listed (employees, country) are noise.
FIT_EFFECTS: tuple[tuple[str, str, float], ...] = (
    ("job_level", "vp", 1.2), ("job_level", "director", 0.6),
    ("account.industry", "software", 0.8),
)
JOB_LEVELS = (("individual", 0.45), ("manager", 0.3), ("director", 0.15), ("vp", 0.1))
INDUSTRIES = ("software", "retail", "education", "manufacturing", "health")
COUNTRIES = ("US", "DE", "GB", "FR", "NL", "ES")
BASE_LOG_ODDS = -7.6


@dataclass(frozen=True)
class PlantedWorld:
    """Leads, events, outcomes and the truth they were drawn from."""

    events: pa.Table     # lead_id, timestamp, type, event, path, email_id
    leads: pa.Table      # lead_id, email, job_level, country, account.industry, account.employees
    outcomes: pa.Table   # lead_id, converted_at (null: never converted in the world's time)
    effects: pa.Table    # name, kind (fit | engagement), trait/event, value, limit, effect
    as_of: int           # the world's end, µs UTC
    seed: int

    def cutoff(self, days_before_end: int) -> str:
        """An ISO cut-off `days_before_end` days before the world's end."""
        return iso(self.as_of - days_before_end * US_PER_DAY)


def generate_planted_world(seed: int = 11, *, leads: int = 6000, days: int = 180,
                           as_of: str = AS_OF, base_log_odds: float = BASE_LOG_ODDS
                           ) -> PlantedWorld:
    """A world of `leads` leads over the `days` days that end at `as_of` (see module doc)."""
    rng = np.random.default_rng(seed)
    end = parse_timestamp(as_of)
    start = end - days * US_PER_DAY
    n = leads
    ids = np.array([f"p-{i:06d}" for i in range(n)], dtype=object)

    levels = rng.choice([lv for lv, _ in JOB_LEVELS], size=n, p=[w for _, w in JOB_LEVELS])
    industry = rng.choice(INDUSTRIES, size=n)
    country = rng.choice(COUNTRIES, size=n)
    employees = np.round(np.exp(rng.normal(4.5, 1.4, size=n))).astype(np.int64) + 1
    has_email = rng.random(n) < 0.8
    traits = {"job_level": levels, "account.industry": industry}
    fit = np.zeros(n)
    for trait, value, effect in FIT_EFFECTS:
        fit += effect * (traits[trait] == value)

    # Activity: a lead-level level times a lead-and-kind interest, so kinds vary on their own.
    activity = np.exp(rng.normal(0.0, 0.3, size=n))
    counts = np.zeros((len(KINDS), n, days), dtype=np.int64)
    for k, kind in enumerate(KINDS):
        interest = np.exp(rng.normal(-0.5, 1.0, size=n))
        counts[k] = rng.poisson((kind.rate * activity * interest)[:, None], size=(n, days))

    # Day by day: the planted features as of the start of the day, then the conversion draw.
    keep = 2.0 ** (-1.0 / HALF_LIFE_DAYS)
    x = np.zeros((len(KINDS), n))
    converted_day = np.full(n, -1)
    for day in range(days):
        logit = base_log_odds + fit + sum(kind.effect * x[k] for k, kind in enumerate(KINDS))
        alive = converted_day < 0
        hit = alive & (rng.random(n) < 1.0 / (1.0 + np.exp(-logit)))
        converted_day[hit] = day
        for k, kind in enumerate(KINDS):
            today = counts[k, :, day]
            if kind.limit == "once":
                x[k] = np.where(today > 0, 1.0, x[k] * keep)
            elif kind.limit == "daily":
                x[k] = x[k] * keep + (today > 0)
            else:
                x[k] = x[k] * keep + today

    events = _events(rng, ids, counts, converted_day, start)
    converted_at = np.where(converted_day >= 0,
                            start + converted_day * US_PER_DAY + rng.integers(
                                8 * 3_600_000_000, 18 * 3_600_000_000, size=n), 0)
    outcomes = pa.table({
        "lead_id": pa.array(ids.tolist(), pa.string()),
        "converted_at": pa.array(converted_at, pa.int64(), mask=converted_day < 0).cast(
            pa.timestamp("us", tz="UTC")),
    })
    emails = [f"{i}@{ind}-{j % 97}.example" if e else None
              for j, (i, ind, e) in enumerate(zip(ids, industry, has_email, strict=True))]
    lead_table = pa.table({
        "lead_id": pa.array(ids.tolist(), pa.string()),
        "email": pa.array(emails, pa.string()),
        "job_level": pa.array(levels.tolist(), pa.string()),
        "country": pa.array(country.tolist(), pa.string()),
        "account.industry": pa.array(industry.tolist(), pa.string()),
        "account.employees": pa.array(employees, pa.int64()),
    })
    return PlantedWorld(events, lead_table, outcomes, _effects(), end, seed)


def _events(rng: np.random.Generator, ids: np.ndarray, counts: np.ndarray,
            converted_day: np.ndarray, start: int) -> pa.Table:
    """Every drawn event at a random time of its day, plus an `Order Completed` per convert."""
    parts: list[dict[str, np.ndarray]] = []
    for k, kind in enumerate(KINDS):
        lead, day = np.nonzero(counts[k])
        repeat = counts[k][lead, day]
        lead, day = np.repeat(lead, repeat), np.repeat(day, repeat)
        at = start + day * US_PER_DAY + rng.integers(0, US_PER_DAY, size=lead.size)
        is_page = kind.type == "page"
        path = kind.value if is_page else None
        if kind.value == "/blog":
            paths = np.array([f"/blog/post-{p}" for p in range(40)], dtype=object)
            path_col = paths[rng.integers(0, 40, size=lead.size)]
        else:
            path_col = np.full(lead.size, path, dtype=object)
        parts.append({"lead": lead, "ts": at,
                      "type": np.full(lead.size, kind.type, dtype=object),
                      "event": np.full(lead.size, None if is_page else kind.value, dtype=object),
                      "path": path_col})
    buyers = np.nonzero(converted_day >= 0)[0]
    at = start + converted_day[buyers] * US_PER_DAY + 20 * 3_600_000_000
    parts.append({"lead": buyers, "ts": at, "type": np.full(buyers.size, "track", dtype=object),
                  "event": np.full(buyers.size, "Order Completed", dtype=object),
                  "path": np.full(buyers.size, None, dtype=object)})
    lead = np.concatenate([p["lead"] for p in parts])
    ts = np.concatenate([p["ts"] for p in parts])
    order = np.lexsort((lead, ts))
    return pa.table({
        "lead_id": pa.array(ids[lead[order]].tolist(), pa.string()),
        "timestamp": pa.array(ts[order], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "type": pa.array(np.concatenate([p["type"] for p in parts])[order].tolist(),
                         pa.string()),
        "event": pa.array(np.concatenate([p["event"] for p in parts])[order].tolist(),
                          pa.string()),
        "path": pa.array(np.concatenate([p["path"] for p in parts])[order].tolist(),
                         pa.string()),
    })


def _effects() -> pa.Table:
    rows: list[tuple[str, str, str, str | None, float]] = [
        ("fit", trait, value, None, effect) for trait, value, effect in FIT_EFFECTS]
    rows += [("engagement", kind.type, kind.value, kind.limit, kind.effect) for kind in KINDS]
    names = [f"{t} = {v}" for t, v, _ in FIT_EFFECTS] + [k.name for k in KINDS]
    return pa.table({
        "name": names,
        "kind": [r[0] for r in rows],
        "source": [r[1] for r in rows],
        "value": [r[2] for r in rows],
        "limit": pa.array([r[3] for r in rows], pa.string()),
        "effect": pa.array([r[4] for r in rows], pa.float64()),
    })
