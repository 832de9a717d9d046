"""Worlds to score: a model, its leads, accounts and events, as of a moment — drawn by
hypothesis (`worlds()`), or the fixed `long_world()`.

Drawn models use every rule kind: fit conditions, bands, `age_of` bands (on date texts with
and without a time and a zone) and disqualification (incl. `account.*` traits), engagement
rules on events and page globs with `where`, `limit` once/daily/weekly, `distinct`, `cap`,
negative points, decay on, off or per rule, lifecycle stages (`on`, `when`, `back`), grades,
temperature, thresholds (`mql_requires_grade` too), `applies_to`, interests (fixed topics and
topics from the event) and three time zones (one with a DST change on the night before
`AS_OF`). Up to 40 drawn events fall up to 40 days before `AS_OF` and a few after it, some of
them raised by programs (`Program Points Added`, `Lifecycle Stage Set`), in arrival order (not
time order). With `accounts`, the model has an `account:` section (fit on account traits,
every roll-up, roles, mqa) and the world an accounts table; leads link to accounts by
`account_id` or e-mail domain (free-mail never).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

from leadscore.model.loader import load_model
from leadscore.model.program_events import POINTS_EVENT, STAGE_EVENT
from leadscore.model.schema import STAGES, Model
from leadscore.timeutil import US_PER_DAY, iso, parse_timestamp

AS_OF = parse_timestamp("2026-03-29T12:00:00Z")   # a DST change in Europe that night
EVENT_NAMES = ["Signed Up", "Clicked", "Order Completed", "Cancelled"]
PATHS = ["/pricing", "/pricing/enterprise", "/products/paper/a4", "/products/", "/careers/x",
         "/blog/a_b", "/p%q"]
GLOBS = ["/pricing*", "/products/*", "/careers/*", "/blog/a?b", "/p%q", "*"]
TOPICS = ["paint", "paper", "x_y"]
DOMAINS = ["acme.com", "ACME.com", "beta.io", "example.org", "gmail.com", "rival.example"]

EVENT_SCHEMA = pa.schema([("lead_id", pa.string()), ("timestamp", pa.timestamp("us", "UTC")),
                          ("type", pa.string()), ("event", pa.string()), ("path", pa.string()),
                          ("topic", pa.string()), ("value", pa.float64()),
                          ("points", pa.float64()), ("stage", pa.string()),
                          ("program", pa.string()), ("reason", pa.string()),
                          ("model", pa.string())])
LEAD_SCHEMA = pa.schema([("lead_id", pa.string()), ("email", pa.string()), ("age", pa.int64()),
                         ("occupation", pa.string()), ("country", pa.string()),
                         ("signed_up", pa.string()), ("account.employees", pa.int64()),
                         ("account.industry", pa.string()),
                         ("account_id", pa.string()), ("job_level", pa.string())])
ACCOUNT_SCHEMA = pa.schema([("account_id", pa.string()), ("domain", pa.string()),
                            ("industry", pa.string()), ("employees", pa.int64())])


@dataclass(frozen=True)
class World:
    """What every engine scores: `models` over `leads` and `events` (rows, times in µs; the
    events in arrival order) at `as_of`; `accounts` (rows) where accounts are scored too."""

    models: tuple[Model, ...]
    leads: tuple[dict[str, Any], ...]
    events: tuple[dict[str, Any], ...]
    as_of: int = AS_OF
    accounts: tuple[dict[str, Any], ...] | None = None
    event_schema: pa.Schema = field(default=EVENT_SCHEMA, repr=False)
    lead_schema: pa.Schema = field(default=LEAD_SCHEMA, repr=False)
    account_schema: pa.Schema = field(default=ACCOUNT_SCHEMA, repr=False)

    def with_events(self, events: list[dict[str, Any]]) -> World:
        return replace(self, events=tuple(events))

    def events_table(self, events: Any = None) -> pa.Table:
        rows = self.events if events is None else events
        return pa.Table.from_pylist(list(rows), self.event_schema)

    def leads_table(self) -> pa.Table:
        return pa.Table.from_pylist(list(self.leads), self.lead_schema)

    def accounts_table(self) -> pa.Table:
        return pa.Table.from_pylist(list(self.accounts or ()), self.account_schema)


points = st.integers(-25, 40).filter(bool).map(float)
half_life = st.sampled_from([0.5, 3.0, 30.0])


@st.composite
def where_conditions(draw: st.DrawFn) -> dict[str, Any]:
    return draw(st.sampled_from([
        {"properties.topic": {"eq": draw(st.sampled_from(TOPICS))}},
        {"properties.topic": {"exists": draw(st.booleans())}},
        {"properties.topic": {"glob": "pa*"}},
        {"properties.value": {"gt": draw(st.integers(0, 50))}},
        {"properties.value": {"range": [10, 30]}},
        {"not": {"properties.topic": {"in": TOPICS[:2]}}},
        {"any": [{"properties.topic": {"contains": "_"}}, {"properties.value": {"lte": 5}}]},
    ]))


@st.composite
def engagement_rules(draw: st.DrawFn, index: int) -> dict[str, Any]:
    rule: dict[str, Any] = {"name": f"rule {index}", "points": draw(points)}
    if draw(st.booleans()):
        rule["event"] = draw(st.sampled_from(EVENT_NAMES))
    else:
        rule["page"] = draw(st.sampled_from(GLOBS))
    if draw(st.integers(0, 3)) == 0:
        rule["where"] = draw(where_conditions())
    limit = draw(st.sampled_from([None, "once", "daily", "weekly"]))
    if limit:
        rule["limit"] = limit
    if draw(st.integers(0, 3)) == 0:
        rule["distinct"] = "properties.topic"
    if draw(st.booleans()):
        rule["cap"] = float(draw(st.integers(1, 60)))
    decay = draw(st.sampled_from(["model", "off", "own"]))
    if decay == "off":
        rule["decay"] = False
    elif decay == "own":
        rule["decay"] = {"half_life_days": draw(half_life)}
    return rule


@st.composite
def interest_rules(draw: st.DrawFn, index: int) -> dict[str, Any]:
    """Like an engagement rule, with a topic (fixed, or from the event) and points > 0 (a
    profile lists the topics above 0: a sum exactly at 0 would be a coin toss)."""
    rule = draw(engagement_rules(index))
    del rule["name"]
    rule["points"] = float(draw(st.integers(1, 40)))
    rule["topic"] = draw(st.sampled_from(["paper", "painting", "{properties.topic}",
                                          "t-{properties.topic}", "{event}"]))
    return rule


FIT_CONDITIONS = [
    {"email": {"exists": True}}, {"age": {"range": [25, 44]}}, {"age": {"gt": 30}},
    {"age": {"eq": 40}}, {"occupation": {"in": ["student", "teacher"]}},
    {"occupation": {"regex": "^eng"}}, {"email": {"glob": "*@example.org"}},
    {"any": [{"country": "DE"}, {"age": {"lt": 20}}]}, {"not": {"country": {"ne": "FR"}}},
    {"account.employees": {"gte": 100}}, {"account.industry": {"eq": "software"}},
]


@st.composite
def account_sections(draw: st.DrawFn) -> dict[str, Any]:
    """A model's `account:` section: fit on the account's traits, a roll-up, roles, mqa."""
    fit: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["when", "bands", "disqualify"]))
        if kind == "bands":
            fit.append({"name": f"a{i}", "attribute": "employees",
                        "bands": [{"range": [1, 50], "points": 5.0}, {"gte": 40, "points": 9.0}]})
        elif kind == "disqualify":
            fit.append({"name": f"a{i}", "when": {"industry": {"eq": "retail"}},
                        "disqualify": "retail"})
        else:
            fit.append({"name": f"a{i}", "points": float(draw(st.integers(-10, 30))),
                        "when": draw(st.sampled_from([{"industry": {"in": ["software"]}},
                                                      {"employees": {"gte": 100}},
                                                      {"domain": {"exists": True}}]))})
    account: dict[str, Any] = {"fit": fit, "engagement": {
        "rollup": draw(st.sampled_from(["sum", "max", "top3_mean"]))}}
    if draw(st.booleans()):
        account["roles"] = {"attribute": "job_level", "want": ["decision maker", "user"]}
    if draw(st.booleans()):
        account["thresholds"] = {"mqa": float(draw(st.integers(0, 80)))}
    return account


@st.composite
def models(draw: st.DrawFn, accounts: bool = False) -> Model:
    fit: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["when", "bands", "disqualify", "age"]))
        if kind == "age":
            fit.append({"name": f"fit {i}", "age_of": "signed_up", "bands": [
                {"lt": 7, "points": draw(points)},
                {"range": [7, 30.5], "points": draw(points)},
                {"gte": 30, "points": draw(points)},
                {"exists": False, "points": draw(points)}]})
        elif kind == "bands":
            fit.append({"name": f"fit {i}", "attribute": "age", "bands": [
                {"range": [18, 30], "points": draw(points)},
                {"gte": 25, "points": draw(points)},
                {"eq": "unknown", "points": draw(points)}]})
        elif kind == "disqualify":
            fit.append({"name": f"fit {i}", "disqualify": f"reason {i}",
                        "when": draw(st.sampled_from([
                            {"email": {"domain_in": ["rival.example"]}},
                            {"occupation": {"eq": "student"}}]))})
        else:
            fit.append({"name": f"fit {i}", "when": draw(st.sampled_from(FIT_CONDITIONS)),
                        "points": draw(points)})
    rules = [draw(engagement_rules(i)) for i in range(draw(st.integers(1, 5)))]
    engagement: dict[str, Any] = {"rules": rules}
    if draw(st.booleans()):
        engagement["decay"] = {"half_life_days": draw(half_life)}
    stages: list[dict[str, Any]] = []
    for stage in draw(st.lists(st.sampled_from(
            ["subscriber", "lead", "sal", "sql", "customer", "advocate"]), max_size=4)):
        kind = draw(st.sampled_from(["on", "when", "back"]))
        if kind == "when":
            stages.append({"stage": stage, "when": draw(st.sampled_from(FIT_CONDITIONS))})
        else:
            on: dict[str, Any] = {"event": draw(st.sampled_from(EVENT_NAMES))}
            if draw(st.integers(0, 4)) == 0:
                on = {"page": draw(st.sampled_from(GLOBS))}
            stages.append({"stage": stage, "on": on, **({"back": True} if kind == "back" else {})})
    raw: dict[str, Any] = {
        "name": "random", "fit": fit, "engagement": engagement, "lifecycle": stages,
        "timezone": draw(st.sampled_from(["UTC", "Europe/Berlin", "Asia/Kolkata"])),
    }
    if draw(st.booleans()):
        raw["grades"] = {"A": 30.0, "B": 15.0, "C": 0.0}
    if draw(st.booleans()):
        raw["temperature"] = {"hot": 40.0, "warm": 10.0}
    if draw(st.booleans()):
        raw["thresholds"] = {"mql": float(draw(st.integers(0, 60)))}
        if "grades" in raw and draw(st.booleans()):
            raw["thresholds"]["mql_requires_grade"] = "B"
    if draw(st.integers(0, 3)) == 0:
        raw["applies_to"] = {"traits.country": {"ne": "FR"}}
    raw["interests"] = [draw(interest_rules(i)) for i in range(draw(st.integers(0, 3)))]
    if accounts:
        raw["account"] = draw(account_sections())
    return Model.model_validate(raw)


@st.composite
def sign_ups(draw: st.DrawFn) -> str:
    """A date text up to 60 days before `AS_OF` and a few after: a date alone, with a time,
    with a zone (an `age_of` rule's trait)."""
    at = AS_OF - draw(st.integers(-5 * 24 * 60, 60 * 24 * 60)) * 60_000_000
    stamp = iso(at)       # 2026-05-10T00:00:00Z
    form = draw(st.sampled_from(["date", "utc", "naive", "zoned"]))
    if form == "date":
        return stamp[:10]
    if form == "naive":
        return stamp[:10] + " " + stamp[11:16]
    if form == "zoned":   # the same instant's wall clock at UTC−05:30
        local = iso(at - (5 * 60 + 30) * 60_000_000)
        return local[:19] + "-05:30"
    return stamp


@st.composite
def lead_rows(draw: st.DrawFn, accounts: bool) -> list[dict[str, Any]]:
    """Up to five leads (some known from their events only)."""
    leads = []
    for i in range(draw(st.integers(1, 5))):
        if draw(st.integers(0, 4)) == 0:
            continue
        leads.append({
            "lead_id": f"lead-{i}",
            "email": draw(st.one_of(st.none(), st.sampled_from(
                [f"p{i}@{d}" for d in DOMAINS]))),
            "age": draw(st.one_of(st.none(), st.integers(10, 70))),
            "occupation": draw(st.sampled_from([None, "student", "engineer", "teacher"])),
            "signed_up": draw(st.one_of(st.none(), st.just("soon"), sign_ups())),
            "country": draw(st.sampled_from([None, "DE", "FR", "US"])),
            "account.employees": draw(st.one_of(st.none(), st.integers(1, 500))),
            "account.industry": draw(st.sampled_from([None, "software", "retail"])),
            "account_id": draw(st.sampled_from([None, None, "acc-0", "acc-1", "solo"]))
            if accounts else None,
            "job_level": draw(st.sampled_from([None, "decision maker", "user", "intern"]))
            if accounts else None,
        })
    return leads


@st.composite
def account_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    return [{"account_id": f"acc-{i}", "domain": draw(st.sampled_from([None, *DOMAINS])),
             "industry": draw(st.sampled_from([None, "software", "retail"])),
             "employees": draw(st.one_of(st.none(), st.integers(1, 500)))}
            for i in range(draw(st.integers(0, 3)))]


@st.composite
def event_rows(draw: st.DrawFn, max_size: int = 40) -> list[dict[str, Any]]:
    events = []
    for _ in range(draw(st.integers(0, max_size))):
        lead = f"lead-{draw(st.integers(0, 4))}"
        # minute resolution over 40 days before as_of, and a few after it
        at = AS_OF - draw(st.integers(-3 * 24 * 60, 40 * 24 * 60)) * 60_000_000
        topic = draw(st.sampled_from([None, *TOPICS]))
        value = draw(st.one_of(st.none(), st.integers(0, 40).map(float)))
        if draw(st.integers(0, 4)) == 0:   # what a program's add_points / set_stage raises
            events.append({"lead_id": lead, "timestamp": at, "type": "track",
                           "event": draw(st.sampled_from([
                               POINTS_EVENT, STAGE_EVENT, "Lead Accepted", "Lead Rejected",
                               "Opportunity Lost"])),
                           "path": None, "topic": topic, "value": value,
                           "points": draw(st.one_of(st.none(), st.just(2e6), st.integers(
                               -30, 30).map(float))),
                           "stage": draw(st.sampled_from([None, "Lead", *STAGES])),
                           "program": "welcome", "reason": draw(st.sampled_from(["a", "b"])),
                           "model": draw(st.sampled_from([None, None, "random", "other"]))})
        elif draw(st.booleans()):
            events.append({"lead_id": lead, "timestamp": at, "type": "page", "event": None,
                           "path": draw(st.sampled_from(PATHS)), "topic": topic,
                           "value": value})
        else:
            events.append({"lead_id": lead, "timestamp": at, "type": "track",
                           "event": draw(st.sampled_from(EVENT_NAMES)), "path": None,
                           "topic": topic, "value": value})
    return events


@st.composite
def worlds(draw: st.DrawFn, accounts: bool | None = None) -> World:
    """A drawn world; with accounts (`accounts=True`), without, or either (None: a third of
    them with)."""
    if accounts is None:
        accounts = draw(st.integers(0, 2)) == 0
    return World((draw(models(accounts)),), tuple(draw(lead_rows(accounts))),
                 tuple(draw(event_rows())), AS_OF,
                 tuple(draw(account_rows())) if accounts else None)


# ---------------------------------------------------------------------------- a long stream

LONG_MODEL = """\
name: m
timezone: Europe/Berlin
fit:
  - {name: gold, when: {tier: {eq: gold}}, points: 20}
engagement:
  decay: {half_life_days: 3}
  rules:
    - {name: pricing, page: /pricing*, points: 10, limit: daily}
    - {name: products, page: /products/*, points: 3, limit: daily, cap: 30}
    - {name: blog, page: /blog/*, points: 1, distinct: path, cap: 10}
    - {name: careers, page: /careers*, points: -15, limit: once, decay: false}
    - {name: opens, event: Email Opened, points: 2, distinct: properties.email_id, cap: 20}
    - {name: clicks, event: Clicked, where: {properties.topic: {exists: true}}, points: 5,
       cap: 25}
    - {name: downloads, event: Downloaded, points: 8, limit: weekly, cap: 40}
    - {name: chat, event: Chat, points: 6, limit: daily, decay: {half_life_days: 0.5}}
    - {name: demo, event: Demo, points: 40, limit: once, decay: false}
    - {name: form, event: Form, points: 4}
    - {name: unsubscribed, event: Unsubscribed, points: -25, limit: once, decay: false}
grades: {A: 20, B: 10}
thresholds: {mql: 45}
lifecycle:
  - {stage: subscriber, on: {event: Form}}
  - {stage: customer, on: {event: Order Completed}}
"""
LONG_EVENT_SCHEMA = pa.schema([("lead_id", pa.string()), ("timestamp", pa.timestamp("us", "UTC")),
                               ("type", pa.string()), ("event", pa.string()),
                               ("path", pa.string()), ("email_id", pa.string()),
                               ("topic", pa.string())])
LONG_LEAD_SCHEMA = pa.schema([("lead_id", pa.string()), ("tier", pa.string())])


@cache
def long_world() -> World:
    """Six thousand events of a few hundred leads (a few heavy ones), 5 % of them late, under
    two models side by side (the second for gold leads only, with its own decay and
    threshold): leads cross the MQL threshold, decay below and cross again."""
    rng = random.Random(7)
    t0 = 1_780_000_000_000_000
    names = ["Email Opened", "Clicked", "Downloaded", "Chat", "Demo", "Form", "Unsubscribed",
             "Order Completed", "Other"]
    pages = ["/pricing", "/pricing/x", "/products/a", "/products/b", "/blog/1", "/blog/2",
             "/careers/x", "/about"]
    events: list[dict[str, Any]] = []
    for i in range(6000):
        lead = f"l{min(int(rng.paretovariate(1.2)), 300)}"
        at = t0 + i * 600_000_000 - (rng.randrange(3 * US_PER_DAY) if rng.random() < 0.05
                                     else 0)
        if rng.random() < 0.5:
            events.append({"lead_id": lead, "timestamp": at, "type": "page",
                           "path": rng.choice(pages)})
        else:
            events.append({"lead_id": lead, "timestamp": at, "type": "track",
                           "event": rng.choice(names), "email_id": rng.choice(
                               ["a", "b", "c", None]), "topic": rng.choice([None, "x"])})
    other = (LONG_MODEL.replace("name: m\n", "name: other\napplies_to: "
                                "{traits.tier: {eq: gold}}\n")
             .replace("half_life_days: 3}", "half_life_days: 10}").replace("mql: 45", "mql: 60"))
    leads = [{"lead_id": f"l{n}", "tier": "gold" if n % 3 == 0 else "silver"}
             for n in range(0, 300) if n % 3 != 2]
    return World((load_model("m.yaml", text=LONG_MODEL), load_model("other.yaml", text=other)),
                 tuple(leads), tuple(events), max(e["timestamp"] for e in events),
                 event_schema=LONG_EVENT_SCHEMA, lead_schema=LONG_LEAD_SCHEMA)
