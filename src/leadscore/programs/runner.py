"""The step interpreter: one enrolment advanced as far as it can go at `now`.

The live scheduler and `simulate` both run `advance`; only the `Context` differs (the store,
or a replay in memory). Each executed step is one `Action` with a key unique per enrolment and
step execution (`<enrolment>#<n>`): the live scheduler writes it with the step's effect in one
transaction, so an effect happens at most once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from leadscore.model.program_events import POINTS_EVENT, STAGE_EVENT
from leadscore.programs.definition import DONE, Program
from leadscore.segments.evaluate import LeadFacts, holds
from leadscore.timeutil import to_datetime, zone

WEEK_US = 7 * 86_400_000_000
HOUR_US = 3_600_000_000
UNTIL_RECHECK_US = 3_600_000_000      # a `wait: {until}` looks again at least hourly
PAUSED_RECHECK_US = 300_000_000       # a paused send (no link secret) looks again in 5 min
MAX_STEPS_AT_ONCE = 1000


@dataclass
class Enrolment:
    id: str
    program: str
    lead_id: str
    entered_at: int
    step: int = 0
    executed: int = 0
    state: dict[str, Any] = field(default_factory=lambda: {"step_times": {}})
    status: str = "active"
    exit_reason: str | None = None


@dataclass(frozen=True)
class Action:
    key: str
    lead_id: str
    program: str
    step: str
    action: str
    at: int
    detail: str | None = None
    effect: dict[str, Any] | None = None


class Context(Protocol):
    timezone: str
    emails_per_week: int | None
    emails_per_hour: int | None         # per address: a send rate that outlasts a restart

    def facts(self, lead_id: str, model: str | None, now: int) -> LeadFacts: ...

    def paused(self) -> str | None:
        """Why no program e-mail can go out now (the send waits, unexecuted), or None."""

    def unsubscribed(self, lead_id: str, facts: LeadFacts) -> bool: ...

    def address_problem(self, facts: LeadFacts) -> str | None:
        """Why this lead gets no e-mail (no valid address; unconfirmed opt-in), or None."""

    def emails_since(self, facts: LeadFacts, since: int) -> list[int]:
        """Times of the e-mails sent to the lead's address since `since`."""

    def unconfirmed(self, facts: LeadFacts, now: int) -> int | None:
        """Double opt-in: None when the address may be e-mailed; else until when the send
        waits for its confirmation (`now` or before: it waited long enough, not sent)."""

    def received(self, lead_id: str) -> set[str]: ...

    def pick_content(self, facts: LeadFacts, received: set[str]) -> dict[str, Any] | None: ...


def _duration(us: int) -> str:
    for unit, size in (("day", 86_400_000_000), ("hour", 3_600_000_000),
                       ("minute", 60_000_000)):
        if us >= size and us % size == 0:
            n = us // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{us / 60_000_000:g} minutes"


def quiet_until(program: Program, timezone: str, now: int) -> int | None:
    """The end of the quiet hours if `now` falls in them (model time zone), else None."""
    if program.quiet_hours is None:
        return None
    start, end = program.quiet_hours
    local = to_datetime(now).astimezone(zone(timezone))
    minute = local.hour * 60 + local.minute
    inside = start <= minute < end if start < end else (minute >= start or minute < end)
    if not inside:
        return None
    day = local.date() if minute < end else local.date() + timedelta(days=1)
    wake = datetime(day.year, day.month, day.day, end // 60, end % 60, tzinfo=local.tzinfo)
    return int(wake.timestamp() * 1_000_000)


def exit_reason(program: Program, ctx: Context, facts: LeadFacts) -> str | None:
    score = facts.score or {}
    for rule in program.exits:
        if rule == "mql" and score.get("mql"):
            return "mql"
        if rule == "disqualified" and score.get("disqualified"):
            return "disqualified"
        if rule == "unsubscribed" and ctx.unsubscribed(facts.lead_id, facts):
            return "unsubscribed"
        if not isinstance(rule, str) and holds(rule, facts):
            return "condition"
    return None


def advance(program: Program, enrolment: Enrolment, ctx: Context, now: int
            ) -> tuple[list[Action], int | None]:
    """Run the enrolment's steps due at `now`; return the actions and when it is due next
    (None: it has finished — `status` says how)."""
    actions: list[Action] = []
    state = enrolment.state
    times: dict[str, int] = state.setdefault("step_times", {})

    def act(step: str, action: str, detail: str | None = None,
            effect: dict[str, Any] | None = None) -> None:
        actions.append(Action(f"{enrolment.id}#{enrolment.executed}", enrolment.lead_id,
                              program.name, step, action, now, detail, effect))
        enrolment.executed += 1

    facts: LeadFacts | None = None
    for _ in range(MAX_STEPS_AT_ONCE):
        if enrolment.step >= len(program.steps):
            enrolment.status, enrolment.exit_reason = "done", "done"
            act(DONE, "exit", "done")
            return actions, None
        # Read once per call: at one `now` the lead's facts do not change between steps (the
        # effects of set_stage/add_points are ingested later, as actions).
        facts = facts or ctx.facts(enrolment.lead_id, program.model, now)
        facts.step_times = times
        reason = exit_reason(program, ctx, facts)
        if reason is not None:
            enrolment.status, enrolment.exit_reason = "exited", reason
            act(program.steps[enrolment.step].id, "exit", reason)
            return actions, None
        step = program.steps[enrolment.step]
        target: str | None = step.then
        if step.kind == "wait":
            until = state.get("wait_until")
            if until is None:
                length = step.spec.get("for", step.spec.get("timeout", 0))
                state["wait_until"] = until = now + length
                detail = (f"until condition, timeout {_duration(length)}"
                          if "until" in step.spec else _duration(length))
                times[step.id] = now
                act(step.id, "wait", detail)
            if ("until" in step.spec and holds(step.spec["until"], facts)) or now >= until:
                state.pop("wait_until", None)
            else:
                recheck = until if "until" not in step.spec else min(
                    until, now + UNTIL_RECHECK_US)
                return actions, recheck
        elif step.kind == "send_email":
            wake = quiet_until(program, ctx.timezone, now)
            if wake is not None:
                return actions, wake
            if ctx.paused() is not None:
                return actions, now + PAUSED_RECHECK_US
            if ctx.unsubscribed(enrolment.lead_id, facts):
                act(step.id, "send_email", "suppressed: unsubscribed")
            elif (problem := ctx.address_problem(facts)) is not None:
                act(step.id, "send_email", f"not sent: {problem}")
            elif (confirm_by := ctx.unconfirmed(facts, now)) is not None and confirm_by > now:
                return actions, confirm_by          # the confirmation wakes it sooner
            elif confirm_by is not None:
                act(step.id, "send_email", "not sent: the address did not confirm (double "
                                           "opt-in)")
            else:
                limit = ctx.emails_per_week
                sent = ctx.emails_since(facts, now - WEEK_US + 1)
                if limit is not None and len(sent) >= limit:
                    return actions, min(sent) + WEEK_US
                hourly = ctx.emails_per_hour
                recent = [t for t in sent if t > now - HOUR_US]
                if hourly and len(recent) >= hourly:
                    return actions, min(recent) + HOUR_US
                content = None
                if step.spec.get("content") == "by_interest":
                    content = ctx.pick_content(facts, ctx.received(enrolment.lead_id))
                detail = f"template={step.spec['template']}"
                if content is not None:
                    detail += f" content={content['id']}"
                act(step.id, "send_email", detail, {
                    "kind": "email", "template": step.spec["template"], "content": content,
                    "facts": facts})
            times[step.id] = now
        elif step.kind == "branch":
            chosen = next((goto for condition, goto in step.spec if holds(condition, facts)),
                          None)
            act(step.id, "branch", f"goto {chosen}" if chosen else "no arm held")
            times[step.id] = now
            target = chosen or target
        elif step.kind == "goto":
            target = step.spec
        elif step.kind == "notify_sales":
            condition = step.spec.get("if")
            if condition is None or holds(condition, facts):
                act(step.id, "notify_sales", step.spec.get("note"), {
                    "kind": "handoff", "note": step.spec.get("note"), "facts": facts})
            else:
                act(step.id, "notify_sales", "skipped: condition does not hold")
            times[step.id] = now
        elif step.kind in ("set_stage", "add_points"):
            # Events every model gives a meaning (model.program_events), for the program's
            # model only where it names one.
            for_model = {"model": program.model} if program.model else {}
            if step.kind == "set_stage":
                detail, message = step.spec["stage"], {
                    "event": STAGE_EVENT, "properties": {
                        "stage": step.spec["stage"], "program": program.name, **for_model}}
            else:
                detail, message = f"{step.spec['points']:+g}", {
                    "event": POINTS_EVENT, "properties": {
                        "points": step.spec["points"], "reason": step.spec["reason"],
                        "program": program.name, **for_model}}
            act(step.id, step.kind, detail, {"kind": "ingest",
                                             "message": {"type": "track", **message}})
            times[step.id] = now
        elif step.kind == "webhook":
            act(step.id, "webhook", step.spec["url"], {"kind": "webhook", **step.spec})
            times[step.id] = now
        enrolment.step = program.index_of(target) if target else enrolment.step + 1
    raise RuntimeError(f"program {program.name!r}: more than {MAX_STEPS_AT_ONCE} steps at once")
