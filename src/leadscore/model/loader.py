"""Load a model file: YAML with line numbers (`leadscore.yamlfile`), pydantic validation,
every problem at once."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from leadscore.errors import ModelError, Problem
from leadscore.model import conditions
from leadscore.model.ages import AGE_OPERATORS
from leadscore.model.interests import parse_topic
from leadscore.model.schema import GRADE_LETTERS, STAGES, Model
from leadscore.yamlfile import KeyPath, Lines, key_path, problem, read_yaml, suggest

# Values with a fixed vocabulary, for 'did you mean' on a near-miss.
CHOICES: dict[str, tuple[str, ...]] = {
    "stage": STAGES, "limit": ("once", "daily", "weekly"),
    "mql_requires_grade": (*GRADE_LETTERS, "F"),
}


def _fields_of(at: KeyPath) -> list[str]:
    """The keys allowed at a place in the model, for 'did you mean' suggestions."""
    cls: Any = Model
    for part in at:
        if isinstance(part, int):
            continue
        field = getattr(cls, "model_fields", {}).get(part)
        if field is None:
            return []
        cls = _model_class(field.annotation)
        if cls is None:
            return []
    return list(getattr(cls, "model_fields", {}))


def _model_class(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_class(arg)
        if found is not None:
            return found
    return None


def _pydantic_problems(exc: ValidationError, file: str, lines: Lines,
                       raw: Mapping[str, Any]) -> list[Problem]:
    problems = []
    for err in exc.errors():
        # Drop the union-branch names pydantic inserts (e.g. 'Decay', 'literal[False]').
        at = _document_path(raw, err["loc"])
        kind, value = err["type"], err.get("input")
        suggestion = None
        if kind == "extra_forbidden":
            suggestion = suggest(str(at[-1]), _fields_of(at[:-1]), ignore_case=True)
            message, expected = f"unknown key {at[-1]!r}", (
                "one of " + ", ".join(_fields_of(at[:-1])) if _fields_of(at[:-1]) else None)
            value = None
        elif kind == "missing":
            message, expected, value = "required key is missing", None, None
        else:
            message = err["msg"].removeprefix("Value error, ")
            expected = None
            if kind == "literal_error":
                expected = err.get("ctx", {}).get("expected")
            choices = CHOICES.get(str(at[-1])) if at else None
            if choices and isinstance(value, str):
                suggestion = suggest(value, choices, ignore_case=True)
        problems.append(problem(file, lines, at, message, value, expected, suggestion))
    # One problem per place and message: union branches repeat themselves.
    unique: dict[tuple[str, str], Problem] = {}
    for p in problems:
        unique.setdefault((p.key, p.message), p)
    return list(unique.values())


def _document_path(raw: Any, loc: tuple[Any, ...]) -> KeyPath:
    """Pydantic's error location without the union-branch tags it inserts ('Decay', ...)."""
    at: list[str | int] = []
    node = raw
    for i, part in enumerate(loc):
        if isinstance(part, int):
            at.append(part)
            node = node[part] if isinstance(node, list) and part < len(node) else None
        elif isinstance(node, Mapping) and part in node:
            at.append(part)
            node = node[part]
        elif i == len(loc) - 1:
            at.append(part)   # a missing or unknown key
    return tuple(at)


def _condition_problems(raw: Mapping[str, Any], file: str, lines: Lines) -> list[Problem]:
    """Validate every condition of the model (pydantic keeps them as raw mappings)."""
    found: list[tuple[KeyPath, Any, str, str | None]] = []
    if isinstance(raw.get("applies_to"), Mapping):
        found.append((("applies_to",), raw["applies_to"], "lead", "traits"))
    for i, rule in enumerate(_items(raw.get("fit"))):
        if "when" in rule:
            found.append((("fit", i, "when"), rule["when"], "lead", "traits"))
        attribute = rule.get("attribute", rule.get("age_of"))
        for j, band in enumerate(_items(rule.get("bands"))):
            ops = {k: v for k, v in band.items() if k != "points"}
            if isinstance(attribute, str):
                found.append((("fit", i, "bands", j), {attribute: ops}, "lead", "traits"))
    engagement = raw["engagement"] if isinstance(raw.get("engagement"), Mapping) else {}
    for i, rule in enumerate(_items(engagement.get("rules"))):
        if "where" in rule:
            found.append((("engagement", "rules", i, "where"), rule["where"], "event", None))
    for i, rule in enumerate(_items(raw.get("lifecycle"))):
        if "when" in rule:
            found.append((("lifecycle", i, "when"), rule["when"], "lead", "traits"))
        on = rule.get("on")
        if isinstance(on, Mapping) and "where" in on:
            found.append((("lifecycle", i, "on", "where"), on["where"], "event", None))
    found += _interest_and_account_conditions(raw)
    problems = []
    for at, cond, scope, bare in found:
        for err in conditions.problems(cond, scope=scope, bare=bare):
            # A band's condition was wrapped in {attribute: ...}: drop that level.
            sub = err.path[1:] if at[-2:-1] == ("bands",) else err.path
            where = (*at, *sub)
            problems.append(problem(file, lines, where, err.message, err.value,
                                    err.expected, err.suggestion))
    return problems


def _interest_and_account_conditions(raw: Mapping[str, Any]
                                     ) -> list[tuple[KeyPath, Any, str, str | None]]:
    found: list[tuple[KeyPath, Any, str, str | None]] = []
    for i, rule in enumerate(_items(raw.get("interests"))):
        if "where" in rule:
            found.append((("interests", i, "where"), rule["where"], "event", None))
    account = raw["account"] if isinstance(raw.get("account"), Mapping) else {}
    for i, rule in enumerate(_items(account.get("fit"))):
        if "when" in rule:
            found.append((("account", "fit", i, "when"), rule["when"], "lead", "account"))
        attribute = rule.get("attribute")
        for j, band in enumerate(_items(rule.get("bands"))):
            ops = {k: v for k, v in band.items() if k != "points"}
            if isinstance(attribute, str):
                found.append((("account", "fit", i, "bands", j), {attribute: ops}, "lead",
                              "account"))
    return found


def _items(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _semantic_problems(model: Model, file: str, lines: Lines) -> list[Problem]:
    problems = []

    def add(at: KeyPath, message: str, value: object = None, expected: str | None = None,
            suggestion: str | None = None) -> None:
        problems.append(problem(file, lines, at, message, value, expected, suggestion))

    seen: dict[str, KeyPath] = {}
    named: list[tuple[KeyPath, str]] = [(("fit", i), r.name) for i, r in enumerate(model.fit)]
    named += [(("engagement", "rules", i), r.name)
              for i, r in enumerate(model.engagement.rules)]
    for at, name in named:
        if name in seen:
            add((*at, "name"), f"rule name is used twice (first at {key_path(seen[name])})",
                name, "a unique name per rule")
        seen.setdefault(name, at)
    for i, rule in enumerate(model.engagement.rules):
        if rule.distinct is not None and conditions.canonical_path(
                rule.distinct, "event", None) is None:
            add(("engagement", "rules", i, "distinct"), "cannot group by this path",
                rule.distinct, "properties.<x>, context.<x>, event or path")
    for i, fit in enumerate(model.fit):
        age_bands = (fit.bands or []) if fit.age_of is not None else []
        for j, band in enumerate(age_bands):
            for op in band.condition:
                if op not in AGE_OPERATORS:
                    add(("fit", i, "bands", j, op), "an `age_of` band compares the age in "
                        "days: never equality on a date", op, ", ".join(AGE_OPERATORS))
    for i, fit in enumerate(model.account.fit if model.account else []):
        if fit.age_of is not None:
            add(("account", "fit", i, "age_of"), "`age_of` is for lead fit rules; account "
                "fit rules read account traits without a time", fit.age_of,
                "`attribute` with `bands`, or `when`")
    wanted = model.thresholds.mql_requires_grade
    if wanted is not None and model.grades and wanted not in {*model.grades, "F"}:
        letters = sorted(model.grades)
        add(("thresholds", "mql_requires_grade"), "not one of this model's grades", wanted,
            ", ".join(letters) + " or F (the grade below all)",
            suggest(wanted, letters, ignore_case=True))
    for i, interest in enumerate(model.interests):
        try:
            parse_topic(interest.topic)
        except ValueError as exc:
            add(("interests", i, "topic"), str(exc), interest.topic,
                "a topic such as painting, or a template such as \"{properties.topic}\"")
        if interest.distinct is not None and conditions.canonical_path(
                interest.distinct, "event", None) is None:
            add(("interests", i, "distinct"), "cannot group by this path", interest.distinct,
                "properties.<x>, context.<x>, event or path")
    return problems


def load_model(source: str | Path, *, text: str | None = None) -> Model:
    """Load and validate a model file; raise ModelError listing every problem in it."""
    raw, lines, file = read_yaml(source, text)
    if not isinstance(raw, Mapping):
        raise ModelError([Problem(file, 1, "(file)", "a model file must be a YAML mapping",
                                  type(raw).__name__, "name:, fit:, engagement: ...")])
    problems = _condition_problems(raw, file, lines)
    try:
        model = Model.model_validate({**raw, "source": file})
    except ValidationError as exc:
        problems = _pydantic_problems(exc, file, lines, raw) + problems
        raise ModelError(sorted(problems, key=lambda p: p.line or 0)) from None
    problems += _semantic_problems(model, file, lines)
    if problems:
        raise ModelError(sorted(problems, key=lambda p: p.line or 0))
    return model


def load_models(sources: list[str | Path]) -> list[Model]:
    """Load several models; every problem of every file is reported together."""
    models, problems = [], []
    for source in sources:
        try:
            models.append(load_model(source))
        except ModelError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ModelError(problems)
    names = [m.name for m in models]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ModelError([Problem(str(m.source), None, "name", "two models have the same "
                                  "name", m.name, "a unique name per model")
                          for m in models if m.name in duplicated])
    return models
