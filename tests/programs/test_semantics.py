"""Program semantics on the live scheduler, in one process on SQLite, with the clock given:
quiet hours in the model's time zone, the weekly e-mail limit across programs, `wait: until`
with its timeout, `webhook` and `notify_sales` steps, and `re_enter`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from leadscore.programs.definition import load_programs
from leadscore.programs.scheduler import Mailer, Scheduler, journey_rows, unsubscribe
from leadscore.service import Service
from leadscore.store import outbox
from leadscore.store.lifecycle import actions, email_sends, enrolments, journeys, unsubscribes
from leadscore.timeutil import iso
from tests.alerts.receiver import Receiver

HOUR = 3_600_000_000
DAY = 24 * HOUR
WEEK = 7 * DAY
MODEL = """
name: shop
timezone: America/New_York
fit:
  - {name: has email, when: {email: {exists: true}}, points: 10}
engagement:
  rules:
    - {name: signup, event: Newsletter Subscribed, points: 5}
    - {name: demo, event: Demo Requested, points: 30}
interests:
  - {topic: painting, event: Newsletter Subscribed, points: 5}
temperature: {hot: 50, warm: 10}
thresholds: {mql: 1000}
"""
TEMPLATE = "Subject: Hello {{ traits.first_name }}\nHi.\n"


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1_000_000)


class World:
    def __init__(self, root: Path, programs: dict[str, str], emails_per_week: int | None = 3):
        for folder in ("models", "programs", "templates"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        (root / "models" / "shop.yaml").write_text(MODEL)
        (root / "templates" / "hello.txt").write_text(TEMPLATE)
        for name, text in programs.items():
            (root / "programs" / f"{name}.yaml").write_text(text)
        self.service = Service.open(f"sqlite:///{root / 's.db'}", models_dir=root / "models",
                                    background=False)
        self.scheduler = Scheduler(self.service, load_programs(
            [root / "programs"], templates=root / "templates"),
            emails_per_week=emails_per_week, mailer=Mailer(None, secret="s3cret"))
        self.n = 0

    def send(self, lead: str, event: str, at: int, **traits: Any) -> None:
        self.n += 1
        messages: list[dict[str, Any]] = [{
            "type": "track", "userId": lead, "event": event, "messageId": f"m{self.n}",
            "timestamp": iso(at)}]
        if traits:
            messages.insert(0, {"type": "identify", "userId": lead, "traits": traits,
                                "messageId": f"i{self.n}", "timestamp": iso(at)})
        # Arriving as it happens (the simulated clock): news, not history.
        result = self.service.ingest(messages, received_at=at)
        assert not result.rejected

    def run(self, now: int) -> int:
        self.scheduler.enrol_from_log(now)
        return self.scheduler.tick(now)

    def journey(self, program: str, lead: str) -> list[tuple[str, str, int]]:
        with self.service.db.read() as connection:
            rows = journey_rows(connection, program, lead)
        return [(r["step"], r["action"], utc(r["at"][:-1] if r["at"].endswith("Z")
                                             else r["at"])) for r in rows]

    def rows(self, table: Any, *where: Any) -> list[Any]:
        with self.service.db.read() as connection:
            return list(connection.execute(select(table).where(*where)))


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Any]:
    made: list[World] = []

    def build(programs: dict[str, str], **kwargs: Any) -> World:
        world = World(tmp_path / f"w{len(made)}", programs, **kwargs)
        made.append(world)
        return world

    yield build
    for world in made:
        world.service.close()


def test_quiet_hours_hold_an_email_until_morning_in_the_model_time_zone(make: Any) -> None:
    world = make({"welcome": """
name: welcome
model: shop
enter: {on: {event: Newsletter Subscribed}}
quiet_hours: {from: "21:00", to: "08:00"}
steps:
  - {id: hello, send_email: {template: hello}}
"""})
    # 03:00 UTC is 22:00 in New York (EST): quiet until 08:00 there, 13:00 UTC.
    t0 = utc("2026-01-15T03:00:00")
    world.send("ann", "Newsletter Subscribed", t0, email="ann@x.example", first_name="Ann")
    assert world.run(t0) == 0
    (row,) = world.rows(enrolments)
    assert row.due_at == utc("2026-01-15T13:00:00")
    assert world.run(utc("2026-01-15T12:59:00")) == 0
    assert world.run(utc("2026-01-15T13:00:00")) >= 1
    assert world.journey("welcome", "ann")[0] == ("hello", "send_email",
                                                  utc("2026-01-15T13:00:00"))
    # Outside the quiet hours (10:00 in New York) it goes at once.
    t1 = utc("2026-01-20T15:00:00")
    world.send("bob", "Newsletter Subscribed", t1, email="bob@x.example", first_name="Bob")
    world.run(t1)
    assert world.journey("welcome", "bob")[0] == ("hello", "send_email", t1)


def test_the_weekly_email_limit_holds_across_programs(make: Any) -> None:
    one = """
name: {name}
model: shop
enter: {{on: {{event: Newsletter Subscribed}}}}
steps:
  - {{id: mail, send_email: {{template: hello}}}}
  - {{wait: {{hours: 1}}}}
  - {{id: again, send_email: {{template: hello}}}}
"""
    world = make({"a": one.format(name="a"), "b": one.format(name="b")}, emails_per_week=3)
    t0 = utc("2026-03-02T15:00:00")
    world.send("ann", "Newsletter Subscribed", t0, email="ann@x.example", first_name="Ann")
    for hour in range(0, 8 * 24 + 2):
        world.run(t0 + hour * HOUR)
    sent = sorted(r.at for r in world.rows(email_sends, email_sends.c.lead_id == "ann"))
    assert len(sent) == 4
    # Three in the first week (both programs' first e-mail, then one `again`), the fourth
    # waits until a week after the first.
    assert sent[:3] == [t0, t0, t0 + HOUR]
    assert sent[3] == t0 + WEEK
    assert all(sum(1 for s in sent if start <= s < start + WEEK) <= 3 for start in sent)


def test_wait_until_goes_on_when_the_condition_holds_or_at_the_timeout(make: Any) -> None:
    world = make({"demo": """
name: demo
model: shop
enter: {on: {event: Newsletter Subscribed}}
steps:
  - id: waiting
    wait: {until: {did: {event: Demo Requested}}, timeout: {days: 2}}
  - {id: after, set_stage: {stage: lead}}
"""})
    t0 = utc("2026-03-02T15:00:00")
    for lead in ("quick", "slow"):
        world.send(lead, "Newsletter Subscribed", t0)
    world.run(t0)
    # The event wakes the enrolment at once (not at the hourly recheck).
    world.send("quick", "Demo Requested", t0 + 10 * 60_000_000)
    world.run(t0 + 10 * 60_000_000)
    for hour in range(1, 50):
        world.run(t0 + hour * HOUR)
    quick = world.journey("demo", "quick")
    slow = world.journey("demo", "slow")
    assert quick[0][:2] == ("waiting", "wait") and quick[1] == ("after", "set_stage",
                                                                t0 + 10 * 60_000_000)
    assert slow[1] == ("after", "set_stage", t0 + 2 * DAY)
    assert [j[1] for j in slow] == ["wait", "set_stage", "exit"]


def test_webhook_and_notify_sales_steps(make: Any) -> None:
    receiver = Receiver("hook").start()
    try:
        world = make({"sales": f"""
name: sales
model: shop
enter: {{on: {{event: Demo Requested}}}}
steps:
  - {{id: tell, webhook: {{url: "{receiver.url}", secret: hook}}}}
  - {{id: cold, notify_sales: {{if: {{score.score: {{gte: 500}}}}, note: never}}}}
  - {{id: hand, notify_sales: {{note: asked for a demo}}}}
"""})
        t0 = utc("2026-03-02T15:00:00")
        world.send("ann", "Newsletter Subscribed", t0, email="ann@x.example")
        world.send("ann", "Demo Requested", t0)
        world.run(t0)
        assert world.scheduler.deliver(t0) == 1
        assert receiver.wait_for(1, timeout=10)
        # Delivered once, signed; not again on the next round.
        assert world.scheduler.deliver(t0 + HOUR) == 0
        assert receiver.bad_signatures == 0 and sum(receiver.counts.values()) == 1
    finally:
        receiver.stop()
    assert [j[:2] for j in world.journey("sales", "ann")] == [
        ("tell", "webhook"), ("cold", "notify_sales"), ("hand", "notify_sales"),
        ("done", "exit")]
    with world.service.db.read() as connection:
        items, _ = outbox.listing(connection, None, 10, 0)
    handoffs = [i for i in items if i.payload.get("source") == "program"]
    (handoff,) = handoffs
    payload = handoff.payload
    assert payload["type"] == "handoff" and payload["note"] == "asked for a demo"
    assert payload["program"] == "sales" and payload["lead_id"] == "ann"
    assert {r["rule"] for r in payload["reasons"]} >= {"has email", "signup", "demo"}
    assert payload["interests"] == [{"topic": "painting", "weight": 5.0}]   # as a lead's
    assert payload["interested_in"] == "interested in: painting 5"


def test_re_enter_never_or_after_days(make: Any) -> None:
    body = """
name: {name}
model: shop
enter: {{on: {{event: Newsletter Subscribed}}}}
re_enter: {policy}
steps:
  - {{id: mark, add_points: {{points: 1, reason: joined}}}}
"""
    world = make({"once": body.format(name="once", policy="never"),
                  "weekly": body.format(name="weekly", policy="{after_days: 3}")})
    t0 = utc("2026-03-02T15:00:00")
    for day in (0, 1, 4, 5, 8):
        world.send("ann", "Newsletter Subscribed", t0 + day * DAY)
        world.run(t0 + day * DAY)
    numbers = {(r.program, r.number): r.entered_at for r in world.rows(enrolments)}
    assert numbers == {("once", 1): t0, ("weekly", 1): t0, ("weekly", 2): t0 + 4 * DAY,
                       ("weekly", 3): t0 + 8 * DAY}
    assert all(r.status == "done" for r in world.rows(enrolments))
    assert len(world.rows(actions, actions.c.kind == "ingest")) == 4


def test_a_template_error_fails_that_lead_email_only(make: Any) -> None:
    world = make({"welcome": """
name: welcome
model: shop
enter: {on: {event: Newsletter Subscribed}}
steps:
  - {id: hello, send_email: {template: hello}}
"""})
    t0 = utc("2026-03-02T15:00:00")
    world.send("ann", "Newsletter Subscribed", t0, email="ann@x.example", first_name="Ann")
    world.send("bob", "Newsletter Subscribed", t0, email="bob@x.example")   # no first_name
    world.run(t0)
    found = {r.lead_id: r for r in world.rows(actions)}
    assert found["ann"].status == "pending" and found["ann"].payload["subject"] == "Hello Ann"
    assert found["bob"].status == "failed" and "first_name" in found["bob"].last_error
    assert {r.status for r in world.rows(enrolments)} == {"done"}


STEPS_WITH_A_WAIT = """
name: welcome
model: shop
enter: {on: {event: Newsletter Subscribed}}
steps:
  - {id: hello, send_email: {template: hello}}
  - wait: {days: 1}
  - {id: again, send_email: {template: hello}}
"""


def test_an_alias_merge_carries_enrolments_and_unsubscribes_to_the_merged_lead(make: Any
                                                                              ) -> None:
    world = make({"welcome": STEPS_WITH_A_WAIT})
    t0 = utc("2026-03-02T15:00:00")
    for lead in ("ann", "bob", "cat"):
        world.send(lead, "Newsletter Subscribed", t0, email=f"{lead}@x.example",
                   first_name=lead.title())
    world.run(t0)
    world.send("dan", "Page Viewed", t0, email="dan@x.example", first_name="Dan")
    with world.service.db.read() as connection:
        assert connection.execute(select(unsubscribes)).all() == []
    world.service.ingest([{"type": "alias", "userId": "dan", "previousId": "bob",
                           "messageId": "a1", "timestamp": iso(t0 + HOUR)}])  # bob is dan
    unsubscribe(world.service, "cat", "test", t0 + HOUR)        # cat, unsubscribed, is ann
    world.service.ingest([{"type": "alias", "userId": "ann", "previousId": "cat",
                           "messageId": "a2", "timestamp": iso(t0 + 2 * HOUR)}])
    world.run(t0 + 2 * DAY)
    second = {r.lead_id: r.payload["to"] for r in world.rows(actions) if r.id.endswith("#2")}
    # bob's enrolment went on as dan's, to dan's address; cat's exited (ann is in the program)
    # and ann, now unsubscribed through cat, is e-mailed no more.
    assert second == {"dan": "dan@x.example"}
    status = {r.id: (r.lead_id, r.status, r.exit_reason) for r in world.rows(enrolments)}
    assert status["welcome|bob|1"] == ("dan", "done", "done")
    assert status["welcome|cat|1"] == ("cat", "exited", "merged")
    again = {r.step: r.detail for r in world.rows(journeys, journeys.c.lead_id == "ann")}
    assert again["again"] == "suppressed: unsubscribed"
    assert [r.lead_id for r in world.rows(unsubscribes)] == ["ann"]


def test_an_enrolment_that_cannot_advance_holds_up_no_other(make: Any) -> None:
    world = make({"welcome": STEPS_WITH_A_WAIT})
    t0 = utc("2026-03-02T15:00:00")
    for lead in ("ann", "bob"):
        world.send(lead, "Newsletter Subscribed", t0, email=f"{lead}@x.example",
                   first_name=lead.title())
    world.run(t0)
    with world.service.db.engine.begin() as connection:   # a lead removed by hand, say
        connection.execute(update(enrolments).where(enrolments.c.lead_id == "bob").values(
            lead_id="ghost"))
    world.run(t0 + 2 * DAY)
    assert [r.lead_id for r in world.rows(actions) if r.id.endswith("#2")] == ["ann"]
    ghost = world.rows(enrolments, enrolments.c.lead_id == "ghost")[0]
    assert ghost.status == "active" and ghost.state["failures"] == 1
    assert "ghost" in ghost.state["error"] and ghost.due_at == t0 + 2 * DAY + 60_000_000
    for minutes in range(1, 20):                       # put off 1, 2, 4, 8 minutes: then out
        world.run(t0 + 2 * DAY + minutes * 8 * 60_000_000)
    ghost = world.rows(enrolments, enrolments.c.lead_id == "ghost")[0]
    assert (ghost.status, ghost.exit_reason, ghost.state["failures"]) == ("exited", "error", 5)


def test_an_enrolment_that_advances_again_starts_its_failure_count_afresh(make: Any) -> None:
    world = make({"welcome": STEPS_WITH_A_WAIT})
    t0 = utc("2026-03-02T15:00:00")
    world.send("bob", "Newsletter Subscribed", t0, email="bob@x.example", first_name="Bob")
    world.run(t0)

    def point_at(lead: str) -> None:
        with world.service.db.engine.begin() as connection:
            connection.execute(update(enrolments).values(lead_id=lead))

    point_at("ghost")
    world.run(t0 + 2 * DAY)
    assert world.rows(enrolments)[0].state["failures"] == 1
    point_at("bob")                                      # the lead is back
    world.run(t0 + 2 * DAY + 2 * 60_000_000)
    row = world.rows(enrolments)[0]
    assert (row.status, "failures" in row.state, "error" in row.state) == ("done", False, False)
    assert [r.lead_id for r in world.rows(actions) if r.id.endswith("#2")] == ["bob"]
