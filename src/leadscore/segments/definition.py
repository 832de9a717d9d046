"""Segment files and the condition language segments (and programs) speak.

A segment condition is a model condition (`traits.x`, `account.x`, bare = trait) that may also
read `score.<field>`, `interest.<topic>`, `stage` and `customer.<rfm field>`, test behaviour
with `did` / `not_did` (`event` or `page`, `where`, `within_days`, `at_least`, and in programs
`since_step`) and membership with `in_segment`. It is parsed once into a small tree; the tree
is evaluated in Python (`segments.evaluate`) and compiled to SQL (`segments.batch`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leadscore.errors import ModelError, Problem
from leadscore.model import conditions as cond
from leadscore.model.compiled import Matcher
from leadscore.model.schema import STAGES, EventMatch
from leadscore.yamlfile import KeyPath, Lines, problem, read_yaml, suggest

SCORE_FIELDS = ("fit", "engagement", "score", "grade", "temperature", "mql", "disqualified",
                "disqualify_reason")
CUSTOMER_FIELDS = ("recency_days", "frequency", "monetary", "tenure_days")
BEHAVIOUR_KEYS = ("event", "page", "where", "within_days", "at_least", "since_step")
SEGMENT_KEYS = ("name", "description", "model", "when")


@dataclass(frozen=True)
class Behaviour:
    """`did` / `not_did`: at least `at_least` matching events (in the window) — or not."""

    negated: bool
    matcher: Matcher
    within_days: float | None
    at_least: int
    since_step: str | None


@dataclass(frozen=True)
class InSegment:
    name: str


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = cond.Predicate | Behaviour | InSegment | And | Or | Not
TRUE: Node = And(())


@dataclass(frozen=True)
class Segment:
    """A named, dynamic group of leads; `model` names whose scores its conditions read."""

    name: str
    when: Node
    model: str | None = None
    description: str | None = None
    source: str | None = None

    @property
    def segments(self) -> set[str]:
        """The segments this one reads (`in_segment`)."""
        return {n.name for n in walk(self.when) if isinstance(n, InSegment)}

    @property
    def behaviours(self) -> list[Behaviour]:
        return [n for n in walk(self.when) if isinstance(n, Behaviour)]


def walk(node: Node) -> Iterable[Node]:
    yield node
    if isinstance(node, And | Or):
        for item in node.items:
            yield from walk(item)
    elif isinstance(node, Not):
        yield from walk(node.item)


def paths(node: Node) -> set[str]:
    return {n.path for n in walk(node) if isinstance(n, cond.Predicate)}


# ----------------------------------------------------------------------------- parsing

class Parser:
    """Parses segment conditions, collecting every problem as (key path, ConditionError)."""

    def __init__(self, *, allow_steps: bool = False):
        self.allow_steps = allow_steps
        self.errors: list[tuple[KeyPath, cond.ConditionError]] = []

    def error(self, at: KeyPath, message: str, value: object = None,
              expected: str | None = None, suggestion: str | None = None) -> None:
        self.errors.append((at, cond.ConditionError((), message, value=value,
                                                    expected=expected,
                                                    suggestion=suggestion)))

    def parse(self, raw: Any, at: KeyPath) -> Node:
        if not isinstance(raw, Mapping) or not raw:
            self.error(at, "a condition must be a non-empty mapping", raw,
                       "{path: {operator: value}}, did, not_did, in_segment, any, all or not")
            return TRUE
        items: list[Node] = []
        for key, spec in raw.items():
            here = (*at, key)
            if key in ("any", "all"):
                if not isinstance(spec, list) or not spec:
                    self.error(here, f"`{key}` takes a non-empty list of conditions", spec,
                               "a list")
                    continue
                subs = tuple(self.parse(s, (*here, i)) for i, s in enumerate(spec))
                items.append(Or(subs) if key == "any" else And(subs))
            elif key == "not":
                items.append(Not(self.parse(spec, here)))
            elif key in ("did", "not_did"):
                behaviour = self.behaviour(spec, here, negated=key == "not_did")
                if behaviour is not None:
                    items.append(behaviour)
            elif key == "in_segment":
                if not isinstance(spec, str) or not spec:
                    self.error(here, "`in_segment` takes a segment name", spec, "a name")
                else:
                    items.append(InSegment(spec))
            else:
                items.extend(self.predicates(str(key), spec, here))
        return items[0] if len(items) == 1 else And(tuple(items))

    def behaviour(self, spec: Any, at: KeyPath, *, negated: bool) -> Behaviour | None:
        if not isinstance(spec, Mapping):
            self.error(at, "a behaviour test is a mapping", spec,
                       "{event: NAME} or {page: GLOB}, with within_days, at_least")
            return None
        ok = True
        for key in spec:
            if key not in BEHAVIOUR_KEYS:
                self.error((*at, key), f"unknown key {key!r}", None,
                           "one of " + ", ".join(BEHAVIOUR_KEYS), suggest(str(key),
                                                                         BEHAVIOUR_KEYS))
                ok = False
        if ("event" in spec) == ("page" in spec):
            self.error(at, "give exactly one of `event` (a track event name) or `page` "
                       "(a page path glob)", None, "event: NAME or page: GLOB")
            return None
        within = spec.get("within_days")
        if within is not None and (isinstance(within, bool)
                                   or not isinstance(within, int | float) or within <= 0):
            self.error((*at, "within_days"), "`within_days` is a positive number of days",
                       within, "a number > 0")
            ok = False
        at_least = spec.get("at_least", 1)
        if isinstance(at_least, bool) or not isinstance(at_least, int) or at_least < 1:
            self.error((*at, "at_least"), "`at_least` is a whole number of events ≥ 1",
                       at_least, "an integer ≥ 1")
            ok = False
        since = spec.get("since_step")
        if since is not None and not self.allow_steps:
            self.error((*at, "since_step"), "`since_step` is only known inside a program",
                       since, "within_days instead")
            ok = False
        elif since is not None and not isinstance(since, str):
            self.error((*at, "since_step"), "`since_step` names a step id", since, "a step id")
            ok = False
        where = spec.get("where")
        if where is not None:
            for problem in cond.problems(where, scope="event"):
                self.errors.append(((*at, "where", *problem.path), problem))
                ok = False
        if not ok:
            return None
        try:
            match = EventMatch.model_validate(
                {k: spec[k] for k in ("event", "page", "where") if k in spec})
        except Exception as exc:  # pydantic: a wrong type of event/page
            self.error(at, f"bad event/page: {exc}".splitlines()[0], None,
                       "a name or a list of names")
            return None
        return Behaviour(negated, Matcher.of(match),
                         float(within) if within is not None else None, at_least,
                         since if isinstance(since, str) else None)

    def predicates(self, key: str, spec: Any, at: KeyPath) -> list[cond.Predicate]:
        path = self.canonical(key, at)
        if path is None:
            return []
        if not isinstance(spec, Mapping):
            spec = {"in": spec} if isinstance(spec, list) else {"eq": spec}
        if not spec:
            self.error(at, "no operator given", None, ", ".join(cond.OPERATORS))
        found: list[cond.Predicate] = []
        for op, value in spec.items():
            errors: list[cond.ConditionError] = []
            pred = cond.predicate(path, str(op), value, (), errors)
            for err in errors:
                self.errors.append(((*at, op), err))
            if pred is not None:
                if path == "stage" and pred.op in ("eq", "in", "ne", "not_in"):
                    self.stages(pred, (*at, op))
                found.append(pred)
        return found

    def stages(self, pred: cond.Predicate, at: KeyPath) -> None:
        values = pred.value if isinstance(pred.value, tuple) else (pred.value,)
        for value in values:
            if value not in STAGES:
                self.error(at, f"unknown stage {value!r}", value, ", ".join(STAGES),
                           suggest(str(value), STAGES))

    def canonical(self, key: str, at: KeyPath) -> str | None:
        root, _, rest = key.partition(".")
        if key == "stage":
            return key
        if root in ("traits", "account", "interest") and rest:
            return key
        if root == "score":
            if rest not in SCORE_FIELDS:
                self.error(at, f"unknown score field {rest!r}", key,
                           ", ".join(f"score.{f}" for f in SCORE_FIELDS),
                           "score." + (suggest(rest, SCORE_FIELDS) or "score"))
                return None
            return key
        if root == "customer":
            if rest not in CUSTOMER_FIELDS:
                self.error(at, f"unknown customer field {rest!r}", key,
                           ", ".join(f"customer.{f}" for f in CUSTOMER_FIELDS),
                           "customer." + (suggest(rest, CUSTOMER_FIELDS) or "frequency"))
                return None
            return key
        if root in ("properties", "context"):
            self.error(at, f"path {key!r} cannot be read here (it is an event's)", key,
                       "did: {event: NAME, where: {...}} for behaviour")
            return None
        return f"traits.{key}"


# ----------------------------------------------------------------------------- files

def condition_problems(parser: Parser, file: str, lines: Lines) -> list[Problem]:
    return [problem(file, lines, (*at, *err.path), err.message, err.value, err.expected,
                    err.suggestion) for at, err in parser.errors]


def load_segment(source: str | Path, *, text: str | None = None) -> Segment:
    """Load and validate one segment file; ModelError lists every problem in it."""
    raw, lines, file = read_yaml(source, text)
    if not isinstance(raw, Mapping):
        raise ModelError([Problem(file, 1, "(file)", "a segment file must be a YAML mapping",
                                  type(raw).__name__, "name:, model:, when:")])
    problems: list[Problem] = []
    for key in raw:
        if key not in SEGMENT_KEYS:
            problems.append(problem(file, lines, (key,), f"unknown key {key!r}", None,
                                    "one of " + ", ".join(SEGMENT_KEYS),
                                    suggest(str(key), SEGMENT_KEYS)))
    name, model = raw.get("name"), raw.get("model")
    if not isinstance(name, str) or not name.strip():
        problems.append(problem(file, lines, ("name",), "required key is missing"
                                if name is None else "a segment name is a non-empty string",
                                name, "a name such as `warm painters`"))
    if model is not None and not isinstance(model, str):
        problems.append(problem(file, lines, ("model",), "a model name is a string", model))
    parser = Parser()
    when = parser.parse(raw.get("when"), ("when",)) if "when" in raw else TRUE
    if "when" not in raw:
        problems.append(problem(file, lines, ("when",), "required key is missing", None,
                                "the segment's condition"))
    problems += condition_problems(parser, file, lines)
    if model is None and any(p.split(".")[0] in ("score", "interest", "stage", "customer")
                             for p in paths(when)):
        problems.append(problem(file, lines, ("when",), "score.*, interest.*, stage and "
                                "customer.* are read under a model: name it", None,
                                "model: <a model's name>"))
    if isinstance(name, str) and name in {n.name for n in walk(when)
                                          if isinstance(n, InSegment)}:
        problems.append(problem(file, lines, ("when",), "the segment refers to itself "
                                "(in_segment)", name, "another segment's name"))
    if problems:
        raise ModelError(sorted(problems, key=lambda p: p.line or 0))
    return Segment(str(name), when, model, raw.get("description"), file)


def load_segments(sources: Iterable[str | Path]) -> list[Segment]:
    """Load segment files (a folder: its *.yaml); refuse unknown `in_segment` names and
    cycles; return them in dependency order (a segment after those it reads)."""
    files: list[Path] = []
    for source in sources:
        path = Path(source)
        files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")) \
            if path.is_dir() else [path]
    found: list[Segment] = []
    problems: list[Problem] = []
    for file in files:
        try:
            found.append(load_segment(file))
        except ModelError as exc:
            problems += exc.problems
    if problems:
        raise ModelError(problems)
    return order(found)


def order(segments: list[Segment]) -> list[Segment]:
    """Segments sorted so each follows those it reads; ModelError on unknown names, twice the
    same name, or a cycle of `in_segment`."""
    by_name: dict[str, Segment] = {}
    problems: list[Problem] = []
    for s in segments:
        if s.name in by_name:
            problems.append(Problem(str(s.source), None, "name", "two segments have the same "
                                    "name", s.name, "a unique name per segment"))
        by_name[s.name] = s
    for s in segments:
        for name in sorted(s.segments - set(by_name)):
            problems.append(Problem(str(s.source), None, "when", "in_segment names an unknown "
                                    "segment", name, ", ".join(sorted(by_name)) or "a segment",
                                    suggest(name, by_name)))
    if problems:
        raise ModelError(problems)
    done: list[Segment] = []
    state: dict[str, int] = {}

    def visit(s: Segment, trail: list[str]) -> None:
        if state.get(s.name) == 2:
            return
        if state.get(s.name) == 1:
            cycle = " → ".join([*trail[trail.index(s.name):], s.name])
            raise ModelError([Problem(str(s.source), None, "when", "segments refer to each "
                                      "other in a cycle", cycle, "no cycle of in_segment")])
        state[s.name] = 1
        for name in sorted(s.segments):
            visit(by_name[name], [*trail, s.name])
        state[s.name] = 2
        done.append(s)

    for s in segments:
        visit(s, [])
    return done
