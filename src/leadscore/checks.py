"""Run a model's worked examples (`tests:`) through both engines and report what fails.

Each test describes one lead (traits, account traits, events) and what its score must be at
`as_of`. The lead is scored by the incremental engine (`explain`, which carries the reasons)
and by the batch engine (`score_many`); every expectation is checked against both, and a
failing one is reported with the actual value and the rules behind it.

A test scores its lead whatever the model's `applies_to` says: it checks the scoring rules,
not the audience.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from leadscore.errors import LeadscoreError
from leadscore.events import EVENT_COLUMNS, Event, Lead, flatten
from leadscore.model.schema import Model, ModelTest
from leadscore.timeutil import parse_timestamp
from leadscore.yamlfile import YamlLoader

OUTPUT_COLUMNS = ("lead_id", "model", "fit", "engagement", "score", "grade", "temperature",
                  "stage", "mql", "disqualified", "disqualify_reason", "purchases",
                  "customer_since", "tenure_days", "recency_days", "frequency", "monetary",
                  "as_of", "interests")
TIME_COLUMNS = ("customer_since", "as_of")
ENGINES = ("incremental", "batch")
TEST_LEAD = "test-lead"
EXACT = 1e-9        # numbers that are "exact" may still differ by float rounding


@dataclass(frozen=True)
class Mismatch:
    """One expectation that does not hold, under the engines listed."""

    key: str
    expected: Any
    actual: Any
    engines: tuple[str, ...]
    line: int | None = None

    def __str__(self) -> str:
        engines = "both engines" if len(self.engines) == len(ENGINES) else self.engines[0]
        return (f"{self.key}: expected {describe(self.expected)}, got {_show(self.actual)} "
                f"({engines})")


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one worked example of one model."""

    model: str
    test: str
    file: str | None
    line: int | None
    mismatches: tuple[Mismatch, ...] = ()
    reasons: tuple[Any, ...] = field(default=(), repr=False)   # Reason (rule, kind, points…)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.error is None

    def messages(self) -> list[str]:
        """One line per failing expectation: where, which test, key, expected, actual, why."""
        out = []
        if self.error is not None:
            out.append(f"{self._where(self.line)}: test {self.test!r}: {self.error}")
        why = reasons_text(self.reasons)
        for mismatch in self.mismatches:
            text = f"{self._where(mismatch.line or self.line)}: test {self.test!r}: {mismatch}"
            out.append(f"{text}; reasons: {why}" if why else text)
        return out

    def _where(self, line: int | None) -> str:
        file = self.file or self.model
        return f"{file}:{line}" if line else file


def run_model_tests(model: Model) -> list[CheckResult]:
    """Run every worked example of `model` through both engines."""
    lines = _test_lines(model.source)
    return [_run(model, test, lines[i] if i < len(lines) else {})
            for i, test in enumerate(model.tests)]


def reasons_text(reasons: Sequence[Any], limit: int = 8, *, more: bool = True) -> str:
    """'pricing page +5, demo request +30' — the rules with the largest points first."""
    shown = sorted((r for r in reasons if r.kind == "disqualify" or r.points != 0),
                   key=lambda r: -abs(r.points))
    parts = [f"{r.rule} {_points(r.points)}" if r.kind != "disqualify"
             else f"{r.rule} (disqualify: {r.detail or r.rule})" for r in shown[:limit]]
    if more and len(shown) > limit:
        parts.append(f"… {len(shown) - limit} more")
    return ", ".join(parts) if parts else "no rule matched"


def describe(expected: Any) -> str:
    if _is_approx(expected):
        return f"{_show(expected['approx'])} ± {_show(expected.get('within', EXACT))}"
    return _show(expected)


# ---- one test

def _run(model: Model, test: ModelTest, lines: Mapping[Any, int]) -> CheckResult:
    line = lines.get(())
    try:
        as_of = parse_timestamp(test.as_of)
        events = [event_of(spec, i) for i, spec in enumerate(test.events)]
    except ValueError as exc:
        return CheckResult(model.name, test.name, model.source, line, error=str(exc))
    lead = Lead(TEST_LEAD, dict(test.traits), dict(test.account))
    audience_free = model.model_copy(update={"applies_to": None})
    actual: dict[str, dict[str, Any]] = {}
    reasons: tuple[Any, ...] = ()
    errors = []
    try:
        from leadscore.explain import explain

        score = explain(audience_free, events, lead, as_of=as_of)
        actual["incremental"] = score.row()
        reasons = tuple(score.reasons)
    except (LeadscoreError, ValueError) as exc:
        errors.append(f"incremental engine failed: {exc}")
    try:
        actual["batch"] = _batch_row(audience_free, events, lead, as_of)
    except (LeadscoreError, ValueError, ImportError) as exc:
        errors.append(f"batch engine failed: {exc}")
    mismatches = []
    for key, expected in test.expect.items():
        key_line = lines.get(("expect", key))
        if key not in OUTPUT_COLUMNS:
            errors.append(f"expect.{key}: not an output column; expected one of "
                          f"{', '.join(OUTPUT_COLUMNS)}")
            continue
        failing: dict[str, list[str]] = {}
        values: dict[str, Any] = {}
        for engine, row in actual.items():
            if not _matches(key, expected, row.get(key)):
                values.setdefault(_show(row.get(key)), row.get(key))
                failing.setdefault(_show(row.get(key)), []).append(engine)
        for shown, engines in failing.items():
            mismatches.append(Mismatch(key, expected, values[shown], tuple(engines), key_line))
    return CheckResult(model.name, test.name, model.source, line, tuple(mismatches), reasons,
                       "; ".join(errors) or None)


def event_of(spec: Mapping[str, Any], index: int) -> Event:
    """`{event: Name, at: T, prop: v}`, `{page: /path, at: T}` or `{screen: Name, at: T}`."""
    rest = dict(spec)
    where = f"events[{index}]"
    at = rest.pop("at", rest.pop("timestamp", None))
    if at is None:
        raise ValueError(f"{where}: needs `at` (when it happened)")
    try:
        timestamp = parse_timestamp(at)
    except ValueError as exc:
        raise ValueError(f"{where}.at: {exc}") from None
    properties = dict(rest.pop("properties", None) or {})
    context = dict(rest.pop("context", None) or {})
    if "page" in rest:
        kind, name, path = "page", None, str(rest.pop("page")).split("?")[0].split("#")[0]
    elif "screen" in rest:
        kind, name, path = "screen", str(rest.pop("screen")), None
    elif "event" in rest:
        kind, name, path = "track", str(rest.pop("event")), None
    else:
        raise ValueError(f"{where}: needs `event: <name>`, `page: <path>` or `screen: <name>`")
    properties.update(rest)
    return Event(TEST_LEAD, timestamp, kind, name, path, properties, context)


def _batch_row(model: Model, events: list[Event], lead: Lead, as_of: int) -> dict[str, Any]:
    from leadscore.engine.batch import score_many

    table = score_many([model], events_table(events), leads_table([lead]), as_of=as_of)
    rows = [row for row in table.to_pylist() if str(row["lead_id"]) == lead.lead_id]
    if not rows:
        raise ValueError("the batch engine returned no score for the lead")
    return dict(rows[0])


def events_table(events: Sequence[Event]) -> pa.Table:
    """Events as an events table: base columns, then one column per property / context path."""
    rows = []
    for e in events:
        row: dict[str, Any] = {"lead_id": e.lead_id, "timestamp": e.timestamp, "type": e.type,
                               "event": e.event, "path": e.path}
        for key, value in flatten("", e.properties).items():
            row[key if key not in EVENT_COLUMNS else f"properties.{key}"] = value
        row.update(flatten("context.", e.context))
        rows.append(row)
    columns: dict[str, pa.Array] = {
        "lead_id": pa.array([r["lead_id"] for r in rows], pa.string()),
        "timestamp": pa.array([r["timestamp"] for r in rows], pa.int64()).cast(
            pa.timestamp("us", tz="UTC")),
        "type": pa.array([r["type"] for r in rows], pa.string()),
        "event": pa.array([r["event"] for r in rows], pa.string()),
        "path": pa.array([r["path"] for r in rows], pa.string()),
    }
    extra = sorted({key for r in rows for key in r} - set(columns))
    for key in extra:
        columns[key] = _column([r.get(key) for r in rows])
    return pa.table(columns)


def leads_table(leads: Sequence[Lead]) -> pa.Table:
    rows = []
    for lead in leads:
        row: dict[str, Any] = {"lead_id": lead.lead_id}
        row.update(flatten("", lead.traits))
        row.update(flatten("account.", lead.account))
        rows.append(row)
    keys = ["lead_id", *sorted({k for r in rows for k in r} - {"lead_id"})]
    return pa.table({k: _column([r.get(k) for r in rows]) for k in keys})


def _column(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


# ---- comparing

def _is_approx(expected: Any) -> bool:
    return isinstance(expected, Mapping) and "approx" in expected


def _profile(actual: Any) -> dict[str, Any]:
    """An interest profile as {topic: weight}, from either engine's form."""
    if isinstance(actual, str):
        actual = json.loads(actual)
    out: dict[str, Any] = {}
    for item in actual or ():
        topic, weight = (item["topic"], item["weight"]) if isinstance(item, Mapping) else item
        out[str(topic)] = weight
    return out


def _matches(key: str, expected: Any, actual: Any) -> bool:
    if key == "interests":
        # `{topic: weight}`: exactly these topics, each weight exact or {approx, within}
        if not isinstance(expected, Mapping):
            return False
        profile = _profile(actual)
        return set(profile) == {str(t) for t in expected} and all(
            _matches("weight", weight, profile[str(topic)]) for topic, weight in expected.items())
    if isinstance(actual, datetime):
        actual = parse_timestamp(actual)
    if _is_approx(expected):
        within = float(expected.get("within", EXACT))
        return _number(actual) and _number(expected["approx"]) and abs(
            float(actual) - float(expected["approx"])) <= within
    if expected is None:
        return actual is None or (isinstance(actual, float) and math.isnan(actual))
    if key in TIME_COLUMNS and isinstance(expected, str):
        try:
            expected = parse_timestamp(expected)
        except ValueError:
            return False
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    if _number(expected):
        return _number(actual) and math.isclose(float(actual), float(expected),
                                                rel_tol=EXACT, abs_tol=EXACT)
    return bool(expected == actual)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.6e}"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "null"
    return str(value)


def _points(points: float) -> str:
    rounded = round(points, 2)
    return f"{rounded:+g}"


def _test_lines(source: str | None) -> list[dict[Any, int]]:
    """Per test: the line of the test (key ()) and of each `expect` key (('expect', key))."""
    if not source:
        return []
    try:
        node = yaml.compose(Path(source).read_text(encoding="utf-8"), Loader=YamlLoader)
    except (OSError, yaml.YAMLError):
        return []
    tests = _child(node, "tests")
    if not isinstance(tests, yaml.SequenceNode):
        return []
    found = []
    for item in tests.value:
        lines: dict[Any, int] = {(): item.start_mark.line + 1}
        expect = _child(item, "expect")
        if isinstance(expect, yaml.MappingNode):
            for key, _ in expect.value:
                lines[("expect", key.value)] = key.start_mark.line + 1
        found.append(lines)
    return found


def _child(node: yaml.Node | None, name: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == name:
                return value
    return None
