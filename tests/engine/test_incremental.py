from __future__ import annotations

import json
import random

import pytest

from leadscore import load_model
from leadscore.engine.incremental import Scorer
from leadscore.errors import EngineError
from leadscore.events import Event
from leadscore.timeutil import US_PER_DAY, parse_timestamp

T0 = parse_timestamp("2026-05-01T12:00:00Z")
DAY = US_PER_DAY

MODEL = """\
name: m
timezone: Europe/Berlin
fit:
  - {name: has email, when: {email: {exists: true}}, points: 10}
  - {name: competitor, when: {email: {domain_in: [rival.example]}}, disqualify: competitor}
engagement:
  decay: {half_life_days: 10}
  rules:
    - {name: signup, event: Signed Up, points: 4, limit: once}
    - {name: pricing, page: /pricing*, points: 5, limit: daily, decay: false}
    - {name: weekly webinar, event: Webinar, points: 3, limit: weekly, decay: false}
    - {name: opens, event: Email Opened, points: 2, distinct: properties.email_id, decay: false}
    - {name: careers, page: /careers/*, points: -10, cap: 15, decay: false}
    - {name: clicks, event: Clicked, points: 6, cap: 10, decay: false}
grades: {A: 10, B: 5}
temperature: {hot: 20, warm: 5}
thresholds: {mql: 30}
lifecycle:
  - {stage: subscriber, on: {event: Signed Up}}
  - {stage: lead, when: {email: {exists: true}}}
  - {stage: customer, on: {event: Order Completed}}
  - {stage: lead, on: {event: Cancelled}, back: true}
"""


@pytest.fixture
def model(tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "m.yaml"
    path.write_text(MODEL)
    return load_model(path)


def track(name: str, at: int, lead: str = "l1", **props: object) -> Event:
    return Event(lead, at, "track", name, None, props)


def page(path: str, at: int, lead: str = "l1") -> Event:
    return Event(lead, at, "page", None, path)


def engagement_of(scorer: Scorer, rule: str, as_of: int) -> float:
    score = scorer.score("l1", as_of=as_of)
    return sum(r.points for r in score.reasons if r.rule == rule)


def test_once_counts_only_the_latest_with_decay(model) -> None:  # type: ignore[no-untyped-def]
    s = Scorer(model)
    s.update_one(track("Signed Up", T0))
    s.update_one(track("Signed Up", T0 + 10 * DAY))
    # only the latest (10 days before as_of = 20 days) counts: 4 · 2^(−10/10) = 2
    assert engagement_of(s, "signup", T0 + 20 * DAY) == pytest.approx(2.0, abs=1e-12)


def test_daily_uses_the_model_timezone(model) -> None:  # type: ignore[no-untyped-def]
    s = Scorer(model)
    # 21:30 and 22:30 UTC on May 1st are 23:30 May 1st and 00:30 May 2nd in Berlin (UTC+2)
    s.update_one(page("/pricing", parse_timestamp("2026-05-01T21:30:00Z")))
    s.update_one(page("/pricing/plans", parse_timestamp("2026-05-01T22:30:00Z")))
    s.update_one(page("/pricing", parse_timestamp("2026-05-01T23:00:00Z")))
    score = s.score("l1", as_of=T0 + 5 * DAY)
    pricing = next(r for r in score.reasons if r.rule == "pricing")
    assert (pricing.points, pricing.matched, pricing.counted) == (10.0, 3, 2)


def test_weekly_is_iso_weeks(model) -> None:  # type: ignore[no-untyped-def]
    s = Scorer(model)
    # 2026-05-03 is a Sunday, 05-04 a Monday: two ISO weeks; 05-05 shares 05-04's week
    for day in ("2026-05-03", "2026-05-04", "2026-05-05"):
        s.update_one(track("Webinar", parse_timestamp(day + "T10:00:00Z")))
    assert engagement_of(s, "weekly webinar", T0 + 9 * DAY) == 6.0


def test_distinct_and_caps(model) -> None:  # type: ignore[no-untyped-def]
    s = Scorer(model)
    for i, email_id in enumerate(["a", "a", "b", "a", None]):
        s.update_one(track("Email Opened", T0 + i, email_id=email_id))
    assert engagement_of(s, "opens", T0 + DAY) == 6.0          # a, b and "no id": 3 × 2
    for i in range(3):
        s.update_one(track("Clicked", T0 + 10 + i))
        s.update_one(page(f"/careers/job-{i}", T0 + 20 + i))
    assert engagement_of(s, "clicks", T0 + DAY) == 10.0         # 18 capped at 10
    assert engagement_of(s, "careers", T0 + DAY) == -15.0       # −30 capped at −15


def test_out_of_order_arrival_gives_the_same_score(model) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(4)
    names = ["Signed Up", "Webinar", "Email Opened", "Clicked", "Order Completed", "Cancelled"]
    events = [track(rng.choice(names), T0 + rng.randrange(30 * DAY), email_id=rng.choice("xyz"))
              for _ in range(60)]
    events += [page(rng.choice(["/pricing", "/careers/a", "/x"]), T0 + rng.randrange(30 * DAY))
               for _ in range(30)]
    as_of = T0 + 31 * DAY
    in_order, shuffled = Scorer(model), Scorer(model)
    for e in sorted(events, key=lambda e: e.timestamp):
        in_order.update_one(e, as_of=as_of)
    rng.shuffle(events)
    for e in events:
        update = shuffled.update_one(e, as_of=as_of)[0]
        # the per-event path (sums per half-life) gives the numbers of the full path
        full = shuffled.score("l1", as_of=as_of)
        assert update.score.engagement == pytest.approx(full.engagement, rel=1e-12, abs=1e-12)
        assert update.score._replace(reasons=()) == full._replace(
            fit=update.score.fit, engagement=update.score.engagement,
            score=update.score.score, reasons=())
    a, b = in_order.score("l1", as_of=as_of), shuffled.score("l1", as_of=as_of)
    assert a.engagement == pytest.approx(b.engagement, rel=1e-12, abs=1e-12)
    assert (a.stage, a.purchases, a.customer_since) == (b.stage, b.purchases, b.customer_since)


def test_handoff_once_per_crossing_and_again_after_decaying_below(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "h.yaml"
    path.write_text("name: h\nengagement:\n  decay: {half_life_days: 1}\n  rules:\n"
                    "    - {name: demo, event: Demo, points: 40}\nthresholds: {mql: 30}\n")
    s = Scorer(load_model(path))
    first = s.update_one(track("Demo", T0))[0]
    assert first.handoff is not None and first.score.mql
    assert [r.rule for r in first.handoff.reasons] == ["demo"]
    # still above: no second handoff
    again = s.update_one(track("Demo", T0 + 1000))[0]
    assert again.handoff is None and again.score.mql
    # three days later 80 points have decayed to 10: below; a new demo crosses again
    later = s.update_one(track("Demo", T0 + 3 * DAY))[0]
    assert later.score.mql and later.handoff is not None
    assert later.handoff.id != first.handoff.id


def test_negative_points_fading_over_the_threshold_raise_one_handoff(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "n.yaml"
    path.write_text("name: n\nengagement:\n  rules:\n"
                    "    - {name: demo, event: Demo, points: 50, limit: once}\n"
                    "    - {name: careers, event: Careers, points: -30, limit: once,\n"
                    "       decay: {half_life_days: 10}}\nthresholds: {mql: 40}\n")
    s = Scorer(load_model(path))
    assert s.crossings("l1", as_of=T0) == []                 # an unknown lead
    s.update_one(track("Careers", T0))
    assert s.update_one(track("Demo", T0))[0].handoff is None     # 50 − 30 = 20
    assert s.crossings("l1", as_of=T0 + 10 * DAY) == []      # 50 − 15 = 35
    # 20 days on, −30 has faded to −7.5: 42.5, over 40 with no event in between
    [handoff] = s.crossings("l1", as_of=T0 + 20 * DAY)
    assert (handoff.lead_id, handoff.model, handoff.at, handoff.event) == (
        "l1", "n", T0 + 20 * DAY, None)
    assert handoff.score.mql and handoff.score.score == pytest.approx(42.5)
    assert s.crossings("l1", as_of=T0 + 21 * DAY) == []      # once per crossing
    assert s.update_one(track("Demo", T0 + 22 * DAY))[0].handoff is None
    # the state remembers it: a scorer loaded from it raises nothing again
    again = Scorer(load_model(path))
    again.load_state(s.state("l1"))
    assert again.crossings("l1", as_of=T0 + 23 * DAY) == []


def test_disqualified_leads_are_dead_and_never_handed_off(model) -> None:  # type: ignore[no-untyped-def]
    s = Scorer(model)
    s.identify("l1", {"email": "spy@rival.example"})
    updates = [s.update_one(track("Clicked", T0 + i))[0] for i in range(10)]
    assert all(u.handoff is None for u in updates)
    score = s.score("l1", as_of=T0 + DAY)
    assert (score.disqualified, score.disqualify_reason, score.temperature, score.mql) == (
        True, "competitor", "dead", False)


def test_lifecycle_forward_back_and_purchases(model) -> None:  # type: ignore[no-untyped-def]
    s = Scorer(model)
    s.update_one(track("Signed Up", T0))
    assert s.score("l1", as_of=T0).stage == "subscriber"
    s.update_one(track("Order Completed", T0 + DAY))
    s.update_one(track("Order Completed", T0 + 3 * DAY))
    score = s.score("l1", as_of=T0 + 5 * DAY)
    assert (score.stage, score.purchases, score.customer_since) == ("customer", 2, T0 + DAY)
    assert score.tenure_days == pytest.approx(4.0)
    s.update_one(track("Cancelled", T0 + 4 * DAY))
    assert s.score("l1", as_of=T0 + 5 * DAY).stage == "lead"
    s.identify("l1", {"email": "a@b.example"})      # a `when` rule: lead at least
    s.update_one(track("Signed Up", T0 + 4 * DAY + 1))   # forward, after the back event
    assert s.score("l1", as_of=T0 + 5 * DAY).stage == "lead"


def test_reasons_sum_to_the_score_and_state_round_trips(model) -> None:  # type: ignore[no-untyped-def]
    s = Scorer(model)
    s.identify("l1", {"email": "a@b.example"})
    for i, name in enumerate(["Signed Up", "Webinar", "Clicked", "Email Opened"]):
        s.update_one(track(name, T0 + i * DAY, email_id=str(i)))
    s.update_one(page("/pricing", T0 + 2 * DAY))
    as_of = T0 + 6 * DAY
    score = s.score("l1", as_of=as_of)
    assert sum(r.points for r in score.reasons) == pytest.approx(score.score, abs=1e-12)
    assert score.fit == 10.0 and score.grade == "A"
    saved = json.loads(json.dumps(s.state("l1")))
    restored = Scorer(model)
    restored.load_state(saved)
    assert restored.score("l1", as_of=as_of) == score
    # and it keeps scoring from there exactly like the original
    for scorer in (s, restored):
        scorer.update_one(track("Email Opened", T0 + 5 * DAY, email_id="0"))
    assert restored.score("l1", as_of=as_of) == s.score("l1", as_of=as_of)


def test_scoring_the_past_after_seeing_later_events_is_refused(model) -> None:  # type: ignore[no-untyped-def]
    s = Scorer(model)
    s.update_one(track("Clicked", T0 + DAY))
    with pytest.raises(EngineError, match="as_of is before"):
        s.score("l1", as_of=T0)


def test_a_model_scores_only_its_audience(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "a.yaml"
    path.write_text("name: a\napplies_to: {traits.segment: {eq: consumer}}\nengagement:\n"
                    "  rules:\n    - {name: x, event: X, points: 1}\n")
    s = Scorer(load_model(path))
    s.identify("biz", {"segment": "business"})
    assert s.update_one(track("X", T0, lead="biz")) == []
    with pytest.raises(EngineError, match="does not apply"):
        s.score("biz", as_of=T0)
    s.identify("biz", {"segment": "consumer"})
    assert s.score("biz", as_of=T0).engagement == 1.0
    assert [x.lead_id for x in s.scores(as_of=T0)] == ["biz"]


def test_program_points_are_explained_per_program_and_reason_and_survive_the_state(
        model) -> None:  # type: ignore[no-untyped-def]
    """`Program Points Added` (decaying under the model's 10 days) shows in the reasons as its
    program and reason; `Lifecycle Stage Set` moves the stage back; both round-trip through the
    saved state, the MQL bound included (the points raise a handoff)."""
    scorer = Scorer(model)

    def points(at: int, value: float, reason: str) -> Event:
        return Event("ann", at, "track", "Program Points Added", properties={
            "points": value, "reason": reason, "program": "welcome"})

    scorer.update_one(Event("ann", T0, "track", "Order Completed"))
    scorer.update_one(points(T0, 8, "joined"))
    scorer.update_one(points(T0 + 10 * DAY, 6, "joined"))
    scorer.update_one(points(T0 + 10 * DAY, -2, "went quiet"))
    scorer.update_one(Event("ann", T0 + DAY, "track", "Lifecycle Stage Set",
                            properties={"stage": "subscriber", "program": "winback"}))
    score = scorer.score("ann", as_of=T0 + 10 * DAY)
    program = {r.rule: (r.points, r.matched, r.detail) for r in score.reasons
               if r.kind == "program"}
    assert program == {"program welcome: joined": (pytest.approx(8 / 2 + 6), 2, "joined"),
                       "program welcome: went quiet": (-2.0, 1, "went quiet")}
    assert score.engagement == pytest.approx(8.0)
    assert score.stage == "subscriber" and score.purchases == 1
    again = Scorer(model)
    again.load_state(json.loads(json.dumps(scorer.state("ann"))))
    assert again.score("ann", as_of=T0 + 20 * DAY).engagement == pytest.approx(4.0)
    assert again.score("ann", as_of=T0 + 20 * DAY).stage == "subscriber"
    # 10 (fit) + 4 + 16 = 30: the MQL threshold, crossed by a program's points alone.
    again.identify("ann", {"email": "ann@example.org"}, as_of=T0 + 20 * DAY)
    updates = again.update_one(points(T0 + 20 * DAY, 16, "webinar"))
    assert updates[0].handoff is not None
