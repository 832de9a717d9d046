"""`add_points` and `set_stage` steps change the lead's score and stage (issue #7): the events
they ingest (`Program Points Added`, `Lifecycle Stage Set`) have a meaning in every model,
without rules of the user's (model.program_events)."""

from __future__ import annotations

from pathlib import Path

from tests.programs.test_semantics import World, utc


def test_add_points_and_set_stage_steps_change_the_score_and_stage(tmp_path: Path) -> None:
    world = World(tmp_path, {"nurture": """
name: nurture
model: shop
enter: {on: {event: Newsletter Subscribed}}
steps:
  - {id: bonus, add_points: {points: 40, reason: joined the nurture}}
  - {id: promote, set_stage: {stage: sql}}
"""})
    t0 = utc("2026-03-02T15:00:00")
    world.send("ann", "Newsletter Subscribed", t0, email="ann@x.example")
    before = world.service.get_lead("ann", "shop")
    assert (before["engagement"], before["stage"]) == (5.0, "visitor")
    world.run(t0)
    assert world.scheduler.deliver(t0) == 2
    after = world.service.get_lead("ann", "shop")
    # The model has no decay: 5 (signup) + 40 (the program's points).
    assert after["engagement"] == 45.0 and after["stage"] == "sql"
    program = [r for r in after["reasons"] if r["kind"] == "program"]
    assert [(r["rule"], r["points"]) for r in program] == [
        ("program nurture: joined the nurture", 40.0)]
    world.service.close()
