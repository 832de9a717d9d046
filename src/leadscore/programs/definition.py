"""Program files: validated like models (file, line, key, expected, suggestion).

Refused at load: unknown keys and step kinds, a `then`/`goto`/`else` to a step that does not
exist, a template that is missing or does not compile (Jinja2, sandboxed), and a cycle of
steps without a `wait` (a lead would loop forever in one instant).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leadscore.errors import ModelError, Problem
from leadscore.programs.templates import Templates
from leadscore.segments.definition import TRUE, Node, Parser, condition_problems
from leadscore.yamlfile import problem, read_yaml, suggest

PROGRAM_KEYS = ("name", "description", "model", "enabled", "enter", "re_enter", "exit",
                "steps", "quiet_hours")
STEP_KINDS = ("send_email", "wait", "branch", "notify_sales", "set_stage", "add_points",
              "webhook", "goto")
STEP_KEYS = (*STEP_KINDS, "id", "then")
EXITS = ("mql", "disqualified", "unsubscribed")
DONE = "done"
UNITS_US = {"days": 86_400_000_000, "hours": 3_600_000_000, "minutes": 60_000_000}


@dataclass(frozen=True)
class Step:
    index: int
    id: str
    kind: str
    spec: Any                      # the kind's settings, parsed (see below)
    then: str | None = None        # a step id or `done`; None: the next step


@dataclass(frozen=True)
class Program:
    name: str
    model: str | None
    steps: tuple[Step, ...]
    enter_event: Any = None        # a Matcher, or None
    enter_segment: str | None = None
    re_enter_after_us: int | None = None    # None: never again
    exits: tuple[str | Node, ...] = ()
    quiet_hours: tuple[int, int] | None = None   # minutes of the day: from, to
    description: str | None = None
    source: str | None = None
    templates: Templates | None = field(default=None, compare=False)
    enabled: bool = True           # `enabled: false`: listed, simulated, never run live

    def index_of(self, step_id: str) -> int:
        """The index of a step id (`done`: past the last step)."""
        if step_id == DONE:
            return len(self.steps)
        return next(s.index for s in self.steps if s.id == step_id)


def _duration(raw: Any) -> int | None:
    if not isinstance(raw, Mapping) or not raw or set(raw) - set(UNITS_US):
        return None
    total = 0
    for unit, amount in raw.items():
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
            return None
        total += round(amount * UNITS_US[unit])
    return total


def _clock(text: Any) -> int | None:
    if not isinstance(text, str) or ":" not in text:
        return None
    hours, _, minutes = text.partition(":")
    if not (hours.isdigit() and minutes.isdigit()):
        return None
    h, m = int(hours), int(minutes)
    return h * 60 + m if 0 <= h < 24 and 0 <= m < 60 else None


class _Checker:
    def __init__(self, file: str, lines: Any, templates: Templates | None):
        self.file, self.lines, self.templates = file, lines, templates
        self.problems: list[Problem] = []
        self.parser = Parser(allow_steps=True)

    def add(self, at: tuple[str | int, ...], message: str, value: object = None,
            expected: str | None = None, suggestion: str | None = None) -> None:
        self.problems.append(problem(self.file, self.lines, at, message, value, expected,
                                     suggestion))

    def condition(self, raw: Any, at: tuple[str | int, ...]) -> Node:
        return self.parser.parse(raw, at)

    def step(self, i: int, raw: Any) -> Step | None:
        at: tuple[str | int, ...] = ("steps", i)
        if not isinstance(raw, Mapping):
            self.add(at, "a step is a mapping", raw, "{send_email: …}, {wait: …}, …")
            return None
        kinds = [k for k in raw if k in STEP_KINDS]
        for key in raw:
            if key not in STEP_KEYS:
                self.add((*at, key), f"unknown step {key!r}", None,
                         "one of " + ", ".join(STEP_KINDS) + " (with id, then)",
                         suggest(str(key), STEP_KEYS))
        if len(kinds) != 1:
            if not [k for k in raw if k not in STEP_KEYS]:
                self.add(at, "a step has exactly one action", kinds or None,
                         ", ".join(STEP_KINDS))
            return None
        kind = kinds[0]
        step_id = raw.get("id", f"step{i + 1}")
        if not isinstance(step_id, str) or not step_id or step_id == DONE:
            self.add((*at, "id"), "a step id is a name other than `done`", step_id)
            step_id = f"step{i + 1}"
        spec = self.spec(kind, raw[kind], (*at, kind))
        then = raw.get("then")
        if then is not None and not isinstance(then, str):
            self.add((*at, "then"), "`then` names a step id or `done`", then)
            then = None
        return Step(i, step_id, kind, spec, then)

    def spec(self, kind: str, raw: Any, at: tuple[str | int, ...]) -> Any:
        if kind == "send_email":
            if not isinstance(raw, Mapping) or not isinstance(raw.get("template"), str):
                self.add(at, "send_email needs a template", raw,
                         "{template: NAME, content: by_interest}")
                return {}
            for key in raw:
                if key not in ("template", "content", "subject"):
                    self.add((*at, key), f"unknown key {key!r}", None,
                             "template, content, subject")
            if raw.get("content") not in (None, "by_interest"):
                self.add((*at, "content"), "unknown content choice", raw.get("content"),
                         "by_interest")
            if self.templates is not None:
                error = self.templates.check(str(raw["template"]))
                if error:
                    self.add((*at, "template"), error, raw["template"],
                             "a template that compiles in " + str(self.templates.folder))
            return dict(raw)
        if kind == "wait":
            if isinstance(raw, Mapping) and "until" in raw:
                timeout = _duration(raw.get("timeout"))
                if timeout is None:
                    self.add((*at, "timeout"), "`wait: {until}` needs a timeout",
                             raw.get("timeout"), "{days: N} (or hours, minutes)")
                return {"until": self.condition(raw["until"], (*at, "until")),
                        "timeout": timeout or 0}
            duration = _duration(raw)
            if duration is None:
                self.add(at, "a wait is {days|hours|minutes: N} or {until: …, timeout: …}",
                         raw, "{days: 1}")
                return {"for": 0}
            return {"for": duration}
        if kind == "branch":
            if not isinstance(raw, list) or not raw:
                self.add(at, "a branch is a list of {if: …, goto: …} and an {else: …}", raw)
                return []
            arms: list[tuple[Node, str]] = []
            for j, arm in enumerate(raw):
                here = (*at, j)
                if isinstance(arm, Mapping) and "else" in arm and len(arm) == 1:
                    arms.append((TRUE, str(arm["else"])))
                elif isinstance(arm, Mapping) and set(arm) == {"if", "goto"}:
                    arms.append((self.condition(arm["if"], (*here, "if")), str(arm["goto"])))
                else:
                    self.add(here, "a branch arm is {if: condition, goto: step} or "
                             "{else: step}", arm)
            return arms
        if kind == "goto":
            if not isinstance(raw, str):
                self.add(at, "goto names a step id or `done`", raw)
                return DONE
            return raw
        if kind == "notify_sales":
            if raw is None or raw is True:
                return {"if": None}
            if not isinstance(raw, Mapping) or set(raw) - {"if", "note"}:
                self.add(at, "notify_sales takes {if: condition, note: text}", raw)
                return {"if": None}
            return {"if": self.condition(raw["if"], (*at, "if")) if "if" in raw else None,
                    "note": raw.get("note")}
        if kind == "set_stage":
            from leadscore.model.schema import STAGES

            stage = raw.get("stage") if isinstance(raw, Mapping) else raw
            if stage not in STAGES:
                self.add(at, f"unknown stage {stage!r}", stage, ", ".join(STAGES),
                         suggest(str(stage), STAGES))
            return {"stage": stage}
        if kind == "add_points":
            points = raw.get("points") if isinstance(raw, Mapping) else raw
            if isinstance(points, bool) or not isinstance(points, int | float):
                self.add(at, "add_points takes a number of points", raw, "{points: 5}")
                points = 0
            return {"points": points, "reason": raw.get("reason")
                    if isinstance(raw, Mapping) else None}
        assert kind == "webhook"
        if not isinstance(raw, Mapping) or not isinstance(raw.get("url"), str) or not str(
                raw["url"]).startswith(("http://", "https://")):
            self.add(at, "webhook takes {url: https://…, secret: …}", raw)
            return {"url": "", "secret": ""}
        if not str(raw.get("secret") or "").strip():
            # Unsigned deliveries would let anyone who finds the URL forge them.
            self.add(at, "webhook needs a secret to sign its deliveries", raw,
                     "{url: https://…, secret: a long random string}")
        return {"url": raw["url"], "secret": str(raw.get("secret", ""))}


def _targets(step: Step) -> list[str]:
    found = [step.then] if step.then else []
    if step.kind == "branch":
        found += [target for _, target in step.spec]
    if step.kind == "goto":
        found.append(step.spec)
    return found


def _successors(program_steps: tuple[Step, ...], step: Step, ids: dict[str, int]) -> list[int]:
    if step.kind == "branch":
        return [ids.get(t, len(program_steps)) for _, t in step.spec]
    if step.kind == "goto":
        return [ids.get(step.spec, len(program_steps))]
    if step.then:
        return [ids.get(step.then, len(program_steps))]
    return [step.index + 1]


def load_program(source: str | Path, *, text: str | None = None,
                 templates: str | Path | Templates | None = None) -> Program:
    """Load and validate a program; ModelError lists every problem. `templates`: the folder
    of its e-mail templates (default: `templates/` beside the program's folder)."""
    raw, lines, file = read_yaml(source, text)
    if not isinstance(raw, Mapping):
        raise ModelError([Problem(file, 1, "(file)", "a program file must be a YAML mapping",
                                  type(raw).__name__, "name:, enter:, steps:")])
    if templates is None and text is None:
        templates = Path(source).resolve().parent.parent / "templates"
    folder = templates if isinstance(templates, Templates) or templates is None \
        else Templates(templates)
    check = _Checker(file, lines, folder)
    for key in raw:
        if key not in PROGRAM_KEYS:
            check.add((key,), f"unknown key {key!r}", None, "one of " + ", ".join(PROGRAM_KEYS),
                      suggest(str(key), PROGRAM_KEYS))
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        check.add(("name",), "required key is missing" if name is None else
                  "a program name is a non-empty string", name)
    enter, matcher, segment = raw.get("enter"), None, None
    if isinstance(enter, Mapping) and set(enter) == {"on"} and isinstance(enter["on"], Mapping):
        behaviour = check.parser.behaviour(enter["on"], ("enter", "on"), negated=False)
        matcher = behaviour.matcher if behaviour is not None else None
    elif isinstance(enter, Mapping) and set(enter) == {"segment"} and isinstance(
            enter["segment"], str):
        segment = enter["segment"]
    else:
        check.add(("enter",), "enter is {on: {event: NAME}} or {segment: NAME}", enter,
                  "{on: {event: Newsletter Subscribed}}")
    re_enter, after = raw.get("re_enter", "never"), None
    if isinstance(re_enter, Mapping) and set(re_enter) == {"after_days"} and isinstance(
            re_enter["after_days"], int | float) and re_enter["after_days"] >= 0:
        after = round(re_enter["after_days"] * UNITS_US["days"])
    elif re_enter != "never":
        check.add(("re_enter",), "re_enter is `never` or {after_days: N}", re_enter)
    exits: list[str | Node] = []
    for i, item in enumerate(raw.get("exit") or []):
        if item in EXITS:
            exits.append(str(item))
        elif isinstance(item, Mapping) and set(item) == {"when"}:
            exits.append(check.condition(item["when"], ("exit", i, "when")))
        else:
            check.add(("exit", i), "unknown exit", item, ", ".join(EXITS) + " or {when: …}",
                      suggest(str(item), EXITS))
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        check.add(("enabled",), "enabled is true or false", enabled, "true or false")
    quiet = raw.get("quiet_hours")
    hours = None
    if quiet is not None:
        start = _clock(quiet.get("from")) if isinstance(quiet, Mapping) else None
        end = _clock(quiet.get("to")) if isinstance(quiet, Mapping) else None
        if start is None or end is None:
            check.add(("quiet_hours",), "quiet_hours is {from: \"HH:MM\", to: \"HH:MM\"}", quiet)
        else:
            hours = (start, end)
    raw_steps = raw.get("steps")
    steps: list[Step] = []
    if not isinstance(raw_steps, list) or not raw_steps:
        check.add(("steps",), "a program needs a list of steps", raw_steps)
    else:
        for i, item in enumerate(raw_steps):
            found = check.step(i, item)
            steps.append(found or Step(i, f"step{i + 1}", "goto", DONE))
    ids: dict[str, int] = {}
    for s in steps:
        if s.id in ids:
            check.add(("steps", s.index, "id"), "a step id is used twice", s.id)
        ids.setdefault(s.id, s.index)
    for s in steps:
        for target in _targets(s):
            if target != DONE and target not in ids:
                check.add(("steps", s.index), f"jump to a missing step {target!r}", target,
                          ", ".join([*ids, DONE]), suggest(target, ids))
    if not any(p.message.startswith("jump to") for p in check.problems):
        cycle = _cycle_without_wait(tuple(steps), ids)
        if cycle:
            check.add(("steps", cycle[0]), "these steps loop without a wait", " → ".join(
                steps[i].id for i in cycle), "a wait step inside the loop")
    check.problems += condition_problems(check.parser, file, lines)
    if check.problems:
        raise ModelError(sorted(check.problems, key=lambda p: p.line or 0))
    return Program(str(name), raw.get("model"), tuple(steps), matcher, segment, after,
                   tuple(exits), hours, raw.get("description"), file, folder,
                   enabled is not False)


def _cycle_without_wait(steps: tuple[Step, ...], ids: dict[str, int]) -> list[int] | None:
    """A cycle of steps none of which is a wait, or None."""
    graph = {s.index: [t for t in _successors(steps, s, ids) if t < len(steps)]
             for s in steps if s.kind != "wait"}
    state: dict[int, int] = {}
    trail: list[int] = []

    def visit(node: int) -> list[int] | None:
        state[node] = 1
        trail.append(node)
        for nxt in graph.get(node, []):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return trail[trail.index(nxt):]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        trail.pop()
        return None

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def load_programs(sources: Iterable[str | Path], *, templates: str | Path | None = None
                  ) -> list[Program]:
    """Load program files (a folder: its *.yaml); every problem of every file together."""
    files: list[Path] = []
    for source in sources:
        path = Path(source)
        files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")) \
            if path.is_dir() else [path]
    found, problems = [], []
    for file in files:
        try:
            found.append(load_program(file, templates=templates))
        except ModelError as exc:
            problems += exc.problems
    if problems:
        raise ModelError(problems)
    return found
