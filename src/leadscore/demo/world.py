"""A seeded, deterministic demo world: an art-supply shop (B2C) and a software vendor (B2B).

`generate_world(seed)` returns the same leads and events for the same seed on every machine:
only `random.Random(seed)` draws numbers, and nothing iterates over a set or a hash order.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from leadscore.demo import art_shop, software
from leadscore.timeutil import US_PER_DAY, iso, parse_timestamp

AS_OF = "2026-06-01T00:00:00Z"
DAYS = 120
US_PER_MINUTE = 60_000_000

# Property columns of the events table besides lead_id, timestamp, type, event, path.
PROPERTY_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("email_id", pa.string()), ("topic", pa.string()), ("revenue", pa.float64()),
    ("plan", pa.string()), ("product", pa.string()),
)
LEAD_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("lead_id", pa.string()), ("segment", pa.string()), ("email", pa.string()),
    ("first_name", pa.string()), ("last_name", pa.string()), ("city", pa.string()),
    ("country", pa.string()), ("age", pa.int64()), ("birthday", pa.string()),
    ("occupation", pa.string()), ("job_title", pa.string()), ("seniority", pa.string()),
    ("company", pa.string()), ("lead_source", pa.string()), ("account.name", pa.string()),
    ("account.industry", pa.string()), ("account.employees", pa.int64()),
    ("account.revenue", pa.int64()),
)


@dataclass(frozen=True)
class World:
    """The demo's leads, their events, who each lead really is, and the moment of scoring."""

    events: pa.Table      # lead_id, timestamp, type, event, path, email_id, topic, revenue, ...
    leads: pa.Table       # lead_id, segment, email, ..., account.industry, account.employees, ...
    personas: pa.Table    # lead_id, business ('art-shop' | 'software'), persona
    as_of: int            # microseconds since the epoch, UTC
    seed: int

    @property
    def as_of_iso(self) -> str:
        return iso(self.as_of)

    def persona_of(self) -> dict[str, str]:
        """lead_id → persona."""
        return dict(zip(self.personas.column("lead_id").to_pylist(),
                        self.personas.column("persona").to_pylist(), strict=True))


@dataclass
class Builder:
    """Collects leads and events while the personas act; knows the calendar of the world."""

    rng: random.Random
    as_of: int
    events: list[dict[str, Any]] = field(default_factory=list)
    leads: list[dict[str, Any]] = field(default_factory=list)
    personas: list[tuple[str, str, str]] = field(default_factory=list)
    # One company per name: two leads drawing the same name share its traits (an account
    # has one industry; the stream semantics keep one value per account trait).
    companies: dict[str, dict[str, Any]] = field(default_factory=dict)

    def moment(self, days_ago: float, *, hour: tuple[int, int] = (7, 22)) -> int:
        """A time on the day `days_ago` days before as_of (at least 1), at a waking hour."""
        day = max(1, int(days_ago))
        minutes = self.rng.randint(hour[0] * 60, hour[1] * 60 + 59)
        return self.as_of - day * US_PER_DAY + minutes * US_PER_MINUTE

    def some_day(self, newest: float, oldest: float) -> int:
        return self.moment(self.rng.uniform(max(1.0, newest), max(1.0, oldest)))

    def add_lead(self, business: str, persona: str, traits: dict[str, Any]) -> str:
        lead_id = traits["lead_id"]
        self.leads.append(traits)
        self.personas.append((lead_id, business, persona))
        return str(lead_id)

    def track(self, lead_id: str, at: int, name: str, **properties: Any) -> None:
        if at < self.as_of:
            self.events.append({"lead_id": lead_id, "timestamp": at, "type": "track",
                                "event": name, "path": None, **properties})

    def page(self, lead_id: str, at: int, path: str) -> None:
        if at < self.as_of:
            self.events.append({"lead_id": lead_id, "timestamp": at, "type": "page",
                                "event": None, "path": path})

    def session(self, lead_id: str, at: int, paths: Sequence[str], views: int) -> int:
        """A visit: `views` pages a minute or few apart; returns the time of the last view."""
        for _ in range(views):
            self.page(lead_id, at, self.rng.choice(paths))
            at += self.rng.randint(1, 4) * US_PER_MINUTE
        return at

    def campaign_mail(self, lead_id: str, since: int, campaigns: Sequence[tuple[str, str, int]],
                      p_open: float, p_click: float) -> None:
        """Opens (some twice) and clicks of the campaign e-mails sent after `since`."""
        for email_id, topic, sent in campaigns:
            if sent < since or self.rng.random() >= p_open:
                continue
            opened = sent + self.rng.randint(10, 48 * 60) * US_PER_MINUTE
            self.track(lead_id, opened, "Email Opened", email_id=email_id, topic=topic)
            if self.rng.random() < 0.2:
                self.track(lead_id, opened + self.rng.randint(60, 3000) * US_PER_MINUTE,
                           "Email Opened", email_id=email_id, topic=topic)
            if self.rng.random() < p_click:
                self.track(lead_id, opened + 2 * US_PER_MINUTE, "Email Link Clicked",
                           email_id=email_id, topic=topic)


Persona = Callable[[Builder, str], None]
MIX = tuple[tuple[str, float], ...]


def generate_world(seed: int = 7, *, consumers: int = 2400, businesses: int = 1600,
                   as_of: str = AS_OF) -> World:
    """The demo world for `seed`: `consumers` shoppers of the art shop, `businesses` people
    at companies looking at the software vendor, ~120 days of events before `as_of`."""
    builder = Builder(random.Random(seed), parse_timestamp(as_of))
    _populate(builder, "art-shop", "c", consumers, art_shop.MIX, art_shop.PERSONAS)
    _populate(builder, "software", "b", businesses, software.MIX, software.PERSONAS)
    return _world(builder, seed)


def _populate(builder: Builder, business: str, prefix: str, count: int, mix: MIX,
              personas: dict[str, Persona]) -> None:
    names = [name for name, _ in mix]
    weights = [weight for _, weight in mix]
    # Every persona at least once (small worlds too), then drawn by weight.
    drawn = names[:count] + builder.rng.choices(names, weights, k=max(0, count - len(names)))
    for i, persona in enumerate(drawn, start=1):
        personas[persona](builder, f"{prefix}-{i:05d}")


def _world(builder: Builder, seed: int) -> World:
    builder.events.sort(key=lambda e: (e["timestamp"], e["lead_id"]))
    columns: dict[str, list[Any]] = {
        "lead_id": [e["lead_id"] for e in builder.events],
        "timestamp": [e["timestamp"] for e in builder.events],
        "type": [e["type"] for e in builder.events],
        "event": [e["event"] for e in builder.events],
        "path": [e["path"] for e in builder.events],
    }
    for name, _ in PROPERTY_COLUMNS:
        columns[name] = [e.get(name) for e in builder.events]
    events = pa.table({
        "lead_id": pa.array(columns["lead_id"], pa.string()),
        "timestamp": pa.array(columns["timestamp"], pa.int64()).cast(
            pa.timestamp("us", tz="UTC")),
        "type": pa.array(columns["type"], pa.string()),
        "event": pa.array(columns["event"], pa.string()),
        "path": pa.array(columns["path"], pa.string()),
        **{name: pa.array(columns[name], kind) for name, kind in PROPERTY_COLUMNS},
    })
    leads = pa.table({name: pa.array([lead.get(name) for lead in builder.leads], kind)
                      for name, kind in LEAD_COLUMNS})
    personas = pa.table({
        "lead_id": [p[0] for p in builder.personas],
        "business": [p[1] for p in builder.personas],
        "persona": [p[2] for p in builder.personas],
    })
    return World(events, leads, personas, builder.as_of, seed)
