"""`routing.yaml` (beside `models/`): teams, ordered routing rules and sales' reason codes.

```yaml
teams:
  dach: {members: [anna@shop.example, ben@shop.example], capacity_per_day: 20,
         hours: "08:00-18:00 Europe/Berlin"}        # hours optional: always, when absent
rules:                                               # first match wins
  - {when: {account.tier: enterprise}, owner: kim@shop.example}
  - {when: {country: {in: [DE, AT, CH]}}, team: dach, accept_within_hours: 24,
     on_breach: escalate, manager: lea@shop.example}
  - {team: dach}                                     # everyone else
feedback:
  reasons: [not a buyer, student, competitor, duplicate, bad timing]
  rejected_cooldown_days: 30
  recycle: keep              # or reset: a recycled (or lost) lead's engagement back to 0
```

A rule's `when` is a lead condition (DESIGN §3: `traits.x` or bare `x`, `account.x`); `model:`
and `segment:` narrow it to a model's handoffs or a segment's members. Errors name the file,
line and key, as a model's do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from functools import lru_cache
from typing import Any

from leadscore.errors import ModelError, Problem
from leadscore.model.conditions import Condition, ConditionError, evaluate, parse
from leadscore.timeutil import zone
from leadscore.yamlfile import Lines, problem, read_yaml, suggest

ON_BREACH = ("escalate", "reassign", "recycle")
DEFAULT_REASONS = ("not a buyer", "student", "competitor", "duplicate", "bad timing",
                   "no budget", "no contact")
TEAM_KEYS = ("members", "capacity_per_day", "hours")
RULE_KEYS = ("when", "model", "segment", "owner", "team", "accept_within_hours", "on_breach",
             "manager", "name")
TOP_KEYS = ("teams", "rules", "feedback")
FEEDBACK_KEYS = ("reasons", "rejected_cooldown_days", "recycle")
RECYCLE = ("keep", "reset")
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})(?:\s+(\S+))?\s*$")


@dataclass(frozen=True)
class Hours:
    start: time
    end: time
    timezone: str

    def open_at(self, local: time) -> bool:
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end      # over midnight


@dataclass(frozen=True)
class Team:
    name: str
    members: tuple[str, ...]
    capacity_per_day: int | None = None
    hours: Hours | None = None

    @property
    def timezone(self) -> str:
        return self.hours.timezone if self.hours is not None else "UTC"


@dataclass(frozen=True)
class Rule:
    index: int
    when: Condition | None = None
    model: str | None = None
    segment: str | None = None
    owner: str | None = None
    team: str | None = None
    accept_within_hours: float | None = None
    on_breach: str = "escalate"
    manager: str | None = None
    name: str | None = None

    def matches(self, lead: Mapping[str, Any], model: str | None,
                segments: frozenset[str]) -> bool:
        if self.model is not None and self.model != model:
            return False
        if self.segment is not None and self.segment not in segments:
            return False
        return self.when is None or evaluate(self.when, lambda path: resolve(lead, path))

    @property
    def label(self) -> str:
        return self.name or f"rule {self.index + 1}"


@dataclass(frozen=True)
class Routing:
    teams: dict[str, Team] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    reasons: tuple[str, ...] = DEFAULT_REASONS
    rejected_cooldown_days: float = 30.0
    recycle: str = "keep"

    def match(self, lead: Mapping[str, Any], model: str | None,
              segments: frozenset[str] = frozenset()) -> Rule | None:
        """The first rule that holds for the lead (traits, account) and the handoff's model."""
        return next((r for r in self.rules if r.matches(lead, model, segments)), None)

    @property
    def needs_segments(self) -> bool:
        return any(r.segment is not None for r in self.rules)


NO_ROUTING = Routing()


def resolve(lead: Mapping[str, Any], path: str) -> Any:
    """A canonical lead path (`traits.country`, `account.tier`) of {traits, account}."""
    root, _, rest = path.partition(".")
    value: Any = lead.get(root) or {}
    for part in rest.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


@lru_cache(maxsize=8)
def parse_routing(text: str, file: str = "routing.yaml") -> Routing:
    """The routing of a file's text; ModelError with every problem found."""
    raw, lines, file = read_yaml(file, text)
    return Parser(file, lines).routing(raw if raw is not None else {})


class Parser:
    def __init__(self, file: str, lines: Lines):
        self.file, self.lines = file, lines
        self.problems: list[Problem] = []

    def add(self, at: tuple[Any, ...], message: str, value: object = None,
            expected: str | None = None, suggestion: str | None = None) -> None:
        self.problems.append(problem(self.file, self.lines, at, message, value, expected,
                                     suggestion))

    def keys(self, raw: Mapping[str, Any], allowed: tuple[str, ...], at: tuple[Any, ...]
             ) -> None:
        for key in raw:
            if key not in allowed:
                self.add((*at, key), f"unknown key {key!r}", key, ", ".join(allowed),
                         suggest(str(key), allowed))

    def routing(self, raw: Any) -> Routing:
        if not isinstance(raw, Mapping):
            self.add((), "a routing file is a mapping", type(raw).__name__,
                     "teams, rules, feedback")
            raise ModelError(self.problems)
        self.keys(raw, TOP_KEYS, ())
        teams = self.teams(raw.get("teams") or {})
        rules = self.rules(raw.get("rules") or [], teams)
        reasons, cooldown = self.feedback(raw.get("feedback") or {})
        recycle = (raw.get("feedback") or {}).get("recycle", "keep") \
            if isinstance(raw.get("feedback") or {}, Mapping) else "keep"
        if recycle not in RECYCLE:
            self.add(("feedback", "recycle"), f"unknown choice {recycle!r}", recycle,
                     " or ".join(RECYCLE))
        if self.problems:
            raise ModelError(self.problems)
        return Routing(teams, rules, reasons, cooldown, str(recycle))

    def teams(self, raw: Any) -> dict[str, Team]:
        if not isinstance(raw, Mapping):
            self.add(("teams",), "teams is a mapping of team name → team", raw)
            return {}
        out = {}
        for name, spec in raw.items():
            at = ("teams", name)
            if not isinstance(spec, Mapping):
                self.add(at, "a team is a mapping", spec, "members, capacity_per_day, hours")
                continue
            self.keys(spec, TEAM_KEYS, at)
            members = spec.get("members")
            if not isinstance(members, list) or not members or not all(
                    isinstance(m, str) and m for m in members):
                self.add((*at, "members"), "members is a non-empty list of names", members)
                members = []
            cap = spec.get("capacity_per_day")
            if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool)
                                    or cap < 1):
                self.add((*at, "capacity_per_day"), "capacity_per_day is a whole number ≥ 1",
                         cap)
                cap = None
            out[str(name)] = Team(str(name), tuple(members), cap,
                                  self.hours(spec.get("hours"), (*at, "hours")))
        return out

    def hours(self, raw: Any, at: tuple[Any, ...]) -> Hours | None:
        if raw is None:
            return None
        found = _HOURS.match(raw) if isinstance(raw, str) else None
        if found is None:
            self.add(at, "hours are written HH:MM-HH:MM and an optional time zone", raw,
                     '"08:00-18:00 Europe/Berlin"')
            return None
        h1, m1, h2, m2, tz = found.groups()
        try:
            start, end = time(int(h1), int(m1)), time(int(h2), int(m2))
        except ValueError:
            self.add(at, "not a time of day", raw, "00:00 to 23:59")
            return None
        try:
            zone(tz or "UTC")
        except Exception:
            self.add(at, f"unknown time zone {tz!r}", tz, "an IANA name such as Europe/Berlin")
            return None
        return Hours(start, end, tz or "UTC")

    def rules(self, raw: Any, teams: Mapping[str, Team]) -> tuple[Rule, ...]:
        if not isinstance(raw, list):
            self.add(("rules",), "rules is a list, first match wins", raw)
            return ()
        out = []
        for i, spec in enumerate(raw):
            at: tuple[Any, ...] = ("rules", i)
            if not isinstance(spec, Mapping):
                self.add(at, "a rule is a mapping", spec, "when, owner or team, …")
                continue
            self.keys(spec, RULE_KEYS, at)
            for key in ("owner", "team", "model", "segment", "manager", "name"):
                if spec.get(key) is not None and (not isinstance(spec[key], str)
                                                  or not spec[key]):
                    self.add((*at, key), f"{key} is a name (a text)", spec[key])
            spec = {k: v for k, v in spec.items() if not (
                k in ("owner", "team", "model", "segment", "manager", "name")
                and not isinstance(v, str))}
            owner, team = spec.get("owner"), spec.get("team")
            if (owner is None) == (team is None):
                self.add(at, "a rule names an owner or a team (one of them)", None,
                         "owner: <name> or team: <team>")
            if team is not None and team not in teams:
                self.add((*at, "team"), f"unknown team {team!r}", team,
                         ", ".join(teams) or "(no team defined)", suggest(str(team), teams))
            when = None
            if spec.get("when") is not None:
                try:
                    when = parse(spec["when"], scope="lead", bare="traits")
                except ConditionError as exc:
                    self.add((*at, "when", *exc.path), exc.message, exc.value, exc.expected,
                             exc.suggestion)
            within = spec.get("accept_within_hours")
            if within is not None and (isinstance(within, bool) or not isinstance(
                    within, (int, float)) or within <= 0):
                self.add((*at, "accept_within_hours"), "a number of hours > 0", within)
                within = None
            on_breach = spec.get("on_breach", "escalate")
            if on_breach not in ON_BREACH:
                self.add((*at, "on_breach"), f"unknown action {on_breach!r}", on_breach,
                         ", ".join(ON_BREACH), suggest(str(on_breach), ON_BREACH))
            if on_breach == "escalate" and within is not None and not spec.get("manager"):
                self.add((*at, "manager"), "escalating a breached SLA needs a manager", None,
                         "manager: <name>")
            out.append(Rule(i, when, spec.get("model"), spec.get("segment"), owner, team,
                            None if within is None else float(within), str(on_breach),
                            spec.get("manager"), spec.get("name")))
        return tuple(out)

    def feedback(self, raw: Any) -> tuple[tuple[str, ...], float]:
        if not isinstance(raw, Mapping):
            self.add(("feedback",), "feedback is a mapping", raw, "reasons, "
                     "rejected_cooldown_days")
            return DEFAULT_REASONS, 30.0
        self.keys(raw, FEEDBACK_KEYS, ("feedback",))
        reasons = raw.get("reasons", list(DEFAULT_REASONS))
        if not isinstance(reasons, list) or not all(isinstance(r, str) and r for r in reasons):
            self.add(("feedback", "reasons"), "reasons is a list of reason codes", reasons)
            reasons = list(DEFAULT_REASONS)
        cooldown = raw.get("rejected_cooldown_days", 30)
        if isinstance(cooldown, bool) or not isinstance(cooldown, (int, float)) or cooldown < 0:
            self.add(("feedback", "rejected_cooldown_days"), "a number of days ≥ 0", cooldown)
            cooldown = 30
        return tuple(reasons), float(cooldown)
