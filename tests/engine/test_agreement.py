"""The incremental and batch engines agree on any model and any event stream, in any order.

Hypothesis draws random models (every rule kind, decay on/off, limits, caps, negative points,
disqualification, lifecycle stages incl. `back`), random leads and events (some after `as_of`,
some raised by programs: `Program Points Added`, `Lifecycle Stage Set`), and delivers the events
to the incremental engine in a random order.
"""

from __future__ import annotations

import math
import os
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadscore.engine.batch import score_many
from leadscore.engine.incremental import Scorer
from leadscore.events import event_from_row, lead_from_row
from leadscore.model.program_events import POINTS_EVENT, STAGE_EVENT
from leadscore.model.schema import STAGES, Model
from leadscore.timeutil import parse_timestamp

AS_OF = parse_timestamp("2026-03-29T12:00:00Z")   # a DST change in Europe that night
EVENT_NAMES = ["Signed Up", "Clicked", "Order Completed", "Cancelled"]
PATHS = ["/pricing", "/pricing/enterprise", "/products/paper/a4", "/products/", "/careers/x",
         "/blog/a_b", "/p%q"]
GLOBS = ["/pricing*", "/products/*", "/careers/*", "/blog/a?b", "/p%q", "*"]
TOPICS = ["paint", "paper", "x_y"]
DOMAINS = ["rival.example", "example.org", "gmail.com"]
EXAMPLES = int(os.environ.get("LEADSCORE_AGREEMENT_EXAMPLES", "60"))

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
def models(draw: st.DrawFn) -> Model:
    fit: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["when", "bands", "disqualify"]))
        if kind == "bands":
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
            ["subscriber", "lead", "sql", "customer", "advocate"]), max_size=4)):
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
    return Model.model_validate(raw)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    leads = []
    for i in range(draw(st.integers(1, 4))):
        if draw(st.integers(0, 4)) == 0:
            continue   # known from events only
        leads.append({
            "lead_id": f"lead-{i}",
            "email": draw(st.one_of(st.none(), st.sampled_from(
                [f"p{i}@{d}" for d in DOMAINS]))),
            "age": draw(st.one_of(st.none(), st.integers(10, 70))),
            "occupation": draw(st.sampled_from([None, "student", "engineer", "teacher"])),
            "country": draw(st.sampled_from([None, "DE", "FR", "US"])),
            "account.employees": draw(st.one_of(st.none(), st.integers(1, 500))),
            "account.industry": draw(st.sampled_from([None, "software", "retail"])),
        })
    events = []
    for _ in range(draw(st.integers(0, 25))):
        lead = f"lead-{draw(st.integers(0, 3))}"
        # minute resolution over 40 days before as_of, and a few after it
        at = AS_OF - draw(st.integers(-3 * 24 * 60, 40 * 24 * 60)) * 60_000_000
        topic = draw(st.sampled_from([None, *TOPICS]))
        value = draw(st.one_of(st.none(), st.integers(0, 40).map(float)))
        if draw(st.integers(0, 4)) == 0:   # what a program's add_points / set_stage raises
            events.append({"lead_id": lead, "timestamp": at, "type": "track",
                           "event": draw(st.sampled_from([POINTS_EVENT, STAGE_EVENT])),
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
    return leads, events


EVENT_SCHEMA = pa.schema([("lead_id", pa.string()), ("timestamp", pa.timestamp("us", "UTC")),
                          ("type", pa.string()), ("event", pa.string()), ("path", pa.string()),
                          ("topic", pa.string()), ("value", pa.float64()),
                          ("points", pa.float64()), ("stage", pa.string()),
                          ("program", pa.string()), ("reason", pa.string()),
                          ("model", pa.string())])
LEAD_SCHEMA = pa.schema([("lead_id", pa.string()), ("email", pa.string()), ("age", pa.int64()),
                         ("occupation", pa.string()), ("country", pa.string()),
                         ("account.employees", pa.int64()), ("account.industry", pa.string())])


def incremental_scores(model: Model, leads: list[dict[str, Any]], events: list[dict[str, Any]],
                       order: list[int]) -> dict[str, dict[str, Any]]:
    scorer = Scorer(model)
    for row in leads:
        lead = lead_from_row(row)
        scorer.identify(lead.lead_id, lead.traits, lead.account, as_of=AS_OF)
    for i in order:
        if events[i]["timestamp"] <= AS_OF:
            scorer.update_one(event_from_row(events[i]), as_of=AS_OF)
    return {s.lead_id: s.row() for s in scorer.scores(as_of=AS_OF)}


def batch_scores(model: Model, leads: list[dict[str, Any]],
                 events: list[dict[str, Any]], **engine: Any) -> dict[str, dict[str, Any]]:
    table = score_many(model, pa.Table.from_pylist(events, EVENT_SCHEMA),
                       pa.Table.from_pylist(leads, LEAD_SCHEMA), as_of=AS_OF, **engine)
    return {row["lead_id"]: row for row in table.to_pylist()}


def same(a: Any, b: Any) -> bool:
    if isinstance(a, list):   # interests: [{topic, weight}], compared as topic → weight
        return isinstance(b, list) and len(a) == len(b) and {i["topic"] for i in a} == {
            i["topic"] for i in b} and all(same(i["weight"], {j["topic"]: j["weight"]
                                                              for j in b}[i["topic"]])
                                           for i in a)
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def as_us(value: Any) -> Any:
    return parse_timestamp(value) if value is not None and not isinstance(value, int) else value


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(model=models(), world=worlds(), data=st.data())
def test_incremental_and_batch_agree(model: Model, world: Any, data: st.DataObject) -> None:
    leads, events = world
    order = data.draw(st.permutations(range(len(events))))
    expected = incremental_scores(model, leads, events, list(order))
    assert_agree(expected, batch_scores(model, leads, events))


SPARK_EXAMPLES = int(os.environ.get("LEADSCORE_SPARK_EXAMPLES", "10"))


@pytest.mark.spark
@settings(max_examples=SPARK_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(model=models(), world=worlds(), data=st.data())
def test_incremental_and_spark_agree(spark: Any, model: Model, world: Any,
                                     data: st.DataObject) -> None:
    leads, events = world
    order = data.draw(st.permutations(range(len(events))))
    expected = incremental_scores(model, leads, events, list(order))
    assert_agree(expected, batch_scores(model, leads, events, engine="spark", spark=spark))


def assert_agree(expected: dict[str, dict[str, Any]], actual: dict[str, dict[str, Any]]
                 ) -> None:
    assert set(actual) == set(expected)
    for lead_id, want in expected.items():
        got = actual[lead_id]
        for column, value in want.items():
            other = got[column]
            if column in ("customer_since", "as_of"):
                other = as_us(other)
            assert same(value, other), (lead_id, column, value, other)
