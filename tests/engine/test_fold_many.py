"""`update_many`'s vectorised fold (engine.incremental.fold_many) gives what `update_one` gives event by
event: the same handoffs (ids, moments, scores and reasons), the same scores and reasons at the
end, up to rounding in the last bits — for any model, any event stream in any order, split
into any batches (so that later batches start from saved state)."""

from __future__ import annotations

import json
import math
import os
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadscore import load_model
from leadscore.engine.incremental.fold_many import fold_many
from leadscore.engine.incremental.scorer import MANY, Scorer
from leadscore.events import Event, event_from_row, lead_from_row
from leadscore.model.schema import Model
from tests.engine.test_agreement import AS_OF, models, same, worlds

EXAMPLES = int(os.environ.get("LEADSCORE_FOLD_EXAMPLES", "80"))
DAY = 86_400_000_000


def scorer_with(model: Model, leads: list[dict[str, Any]]) -> Scorer:
    scorer = Scorer(model)
    for row in leads:
        lead = lead_from_row(row)
        scorer.identify(lead.lead_id, lead.traits, lead.account, as_of=0)
    return scorer


def reloaded(scorer: Scorer) -> Scorer:
    """A new Scorer with `scorer`'s leads saved and loaded back (through JSON)."""
    again = Scorer([m.model for m in scorer.models.values()])
    for lead_id in scorer.leads():
        again.load_state(json.loads(json.dumps(scorer.state(lead_id))))
    return again


def close(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    return same(a, b)


def assert_same_scores(one: Scorer, many: Scorer) -> None:
    assert sorted(one.leads()) == sorted(many.leads())
    for lead_id in one.leads():
        as_of = max(AS_OF, one.latest(lead_id) or AS_OF)
        assert one.latest(lead_id) == many.latest(lead_id)
        for name in one.models:
            try:
                a = one.score(lead_id, name, as_of=as_of)
            except Exception:
                continue
            b = many.score(lead_id, name, as_of=as_of)
            assert close(tuple(a._replace(reasons=())), tuple(b._replace(reasons=()))), (a, b)
            assert len(a.reasons) == len(b.reasons)
            for x, y in zip(a.reasons, b.reasons, strict=True):
                assert close(tuple(x), tuple(y)), (x, y)
            # and the saved state reloads to the same score
            again = Scorer([m.model for m in many.models.values()])
            again.load_state(json.loads(json.dumps(many.state(lead_id))))
            assert close(tuple(again.score(lead_id, name, as_of=as_of)), tuple(b))


def assert_same_handoffs(expected: list[Any], got: list[Any]) -> None:
    assert [h.id for h in got] == [h.id for h in expected]
    for a, b in zip(expected, got, strict=True):
        assert (a.lead_id, a.at, a.event) == (b.lead_id, b.at, b.event)
        assert close(tuple(a.score), tuple(b.score))


@st.composite
def long_worlds(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Like test_agreement's worlds, with up to 4× the events (several per lead)."""
    leads, events = draw(worlds())
    for _ in range(draw(st.integers(0, 3))):
        events = events + draw(worlds())[1]
    return leads, events


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(model=models(), world=long_worlds(), data=st.data())
def test_fold_many_equals_update_one(model: Model, world: Any, data: st.DataObject) -> None:
    leads, rows = world
    order = data.draw(st.permutations(range(len(rows))))
    events = [event_from_row(rows[i]) for i in order]
    one, many = scorer_with(model, leads), scorer_with(model, leads)
    expected = [u.handoff for e in events for u in one.update_one(e) if u.handoff]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=3)))
    got = []
    for start, end in zip([0, *cuts], [*cuts, len(events)], strict=True):
        if start and data.draw(st.booleans()):
            many = reloaded(many)     # as the store does between transactions
        got += fold_many(many, events[start:end])
    assert_same_handoffs(expected, got)
    assert_same_scores(one, many)


BENCH_LIKE = """\
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


def test_a_long_stream_in_batches_gives_the_handoffs_of_update_one(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Thousands of events of a few hundred leads, some late, in batches of varied size, under
    two models: leads cross, decay below, cross again, in one batch and across batches."""
    path = tmp_path / "m.yaml"
    path.write_text(BENCH_LIKE)
    model = load_model(path)
    rng = random.Random(7)
    t0 = 1_780_000_000_000_000
    names = ["Email Opened", "Clicked", "Downloaded", "Chat", "Demo", "Form", "Unsubscribed",
             "Order Completed", "Other"]
    pages = ["/pricing", "/pricing/x", "/products/a", "/products/b", "/blog/1", "/blog/2",
             "/careers/x", "/about"]
    events = []
    for i in range(6000):
        lead = f"l{min(int(rng.paretovariate(1.2)), 300)}"
        at = t0 + i * 600_000_000 - (rng.randrange(3 * DAY) if rng.random() < 0.05 else 0)
        if rng.random() < 0.5:
            events.append(Event(lead, at, "page", None, rng.choice(pages)))
        else:
            events.append(Event(lead, at, "track", rng.choice(names), None, {
                "email_id": rng.choice(["a", "b", "c", None]),
                "topic": rng.choice([None, "x"])}))
    # a second model beside it: its own decay and threshold, for half of the leads only
    other = tmp_path / "other.yaml"
    other.write_text(BENCH_LIKE.replace("name: m\n", "name: other\napplies_to: "
                                        "{traits.tier: {eq: gold}}\n")
                     .replace("half_life_days: 3}", "half_life_days: 10}")
                     .replace("mql: 45", "mql: 60"))
    models = [model, load_model(other)]
    one, many = Scorer(models), Scorer(models)
    for scorer in (one, many):
        for n in range(0, 300, 3):
            scorer.identify(f"l{n}", {"tier": "gold"}, as_of=0)
        for n in range(1, 300, 3):
            scorer.identify(f"l{n}", {"tier": "silver"}, as_of=0)
    expected = [u.handoff for e in events for u in one.update_one(e) if u.handoff]
    assert len(expected) > 50 and {h.model for h in expected} == {"m", "other"}
    got = []
    start = 0
    while start < len(events):
        size = rng.choice([1, 70, 500, 2500])
        batch = events[start:start + size]
        # update_many folds small batches one event at a time: fold_many itself for those
        got += fold_many(many, batch) if 1 < size < MANY else many.update_many(batch)
        start += size
    assert_same_handoffs(expected, got)
    assert_same_scores(one, many)
    assert not math.isnan(sum(s.score for s in many.scores(as_of=events[-1].timestamp)))
