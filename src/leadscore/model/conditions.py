"""Conditions: parsed once into a small tree, evaluated without `eval`.

The same tree is evaluated here in Python (incremental engine) and compiled to SQL by
`engine.sql.conditions` (batch engine); docs/model-format.md is the contract both follow.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from leadscore.globs import glob_to_regex
from leadscore.yamlfile import suggest

OPERATORS: tuple[str, ...] = (
    "eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "range",
    "exists", "glob", "regex", "contains", "domain_in",
)
COMBINATORS: tuple[str, ...] = ("any", "all", "not")
# Aliases people type by habit; the loader suggests the real name.
OPERATOR_ALIASES: dict[str, str] = {
    "equal": "eq", "equals": "eq", "is": "eq", "==": "eq", "not_equal": "ne", "!=": "ne",
    "neq": "ne", "one_of": "in", "nin": "not_in", ">": "gt", ">=": "gte", "ge": "gte",
    "<": "lt", "<=": "lte", "le": "lte", "between": "range", "matches": "regex",
    "like": "glob", "includes": "contains", "domain": "domain_in", "exist": "exists",
}


class ConditionError(ValueError):
    """One problem in a condition, with the key path below the condition's root."""

    def __init__(self, path: tuple[str | int, ...], message: str, *, value: object = None,
                 expected: str | None = None, suggestion: str | None = None):
        super().__init__(message)
        self.path, self.message = path, message
        self.value, self.expected, self.suggestion = value, expected, suggestion


@dataclass(frozen=True)
class Predicate:
    """`path op value`; `path` is the canonical dotted path (`traits.age`, `properties.topic`)."""

    path: str
    op: str
    value: Any
    compiled: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class All:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Any_:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition = Predicate | All | Any_ | Not
TRUE = All(())


# ----------------------------------------------------------------------------- parsing

def parse(raw: Any, *, scope: str, bare: str | None = None) -> Condition:
    """Parse a condition mapping; raise the first ConditionError (see `problems` for all).

    `scope` names the paths allowed (`lead` or `event`); `bare` is the prefix a path without
    one gets (`traits` in fit rules).
    """
    errors: list[ConditionError] = []
    tree = _parse(raw, (), scope, bare, errors)
    if errors:
        raise errors[0]
    return tree


def problems(raw: Any, *, scope: str, bare: str | None = None) -> list[ConditionError]:
    errors: list[ConditionError] = []
    _parse(raw, (), scope, bare, errors)
    return errors


LEAD_ROOTS = ("traits", "account")
EVENT_ROOTS = ("properties", "context")
EVENT_FIELDS = ("event", "type", "path")


def canonical_path(path: str, scope: str, bare: str | None) -> str | None:
    """The canonical form of a path in a scope, or None if it is not allowed there."""
    root = path.split(".", 1)[0]
    if scope == "lead":
        if root in LEAD_ROOTS and "." in path:
            return path
        return f"{bare}.{path}" if bare else None
    if root in EVENT_ROOTS and "." in path:
        return path
    if path in EVENT_FIELDS:
        return path
    return f"{bare}.{path}" if bare else None


def _parse(raw: Any, at: tuple[str | int, ...], scope: str, bare: str | None,
           errors: list[ConditionError]) -> Condition:
    if not isinstance(raw, Mapping) or not raw:
        errors.append(ConditionError(at, "a condition must be a non-empty mapping", value=raw,
                                     expected="{path: {operator: value}}, any, all or not"))
        return TRUE
    items: list[Condition] = []
    for key, spec in raw.items():
        here = (*at, key)
        if key in ("any", "all"):
            if not isinstance(spec, list) or not spec:
                errors.append(ConditionError(here, f"`{key}` takes a non-empty list of "
                                             "conditions", value=spec, expected="a list"))
                continue
            subs = tuple(_parse(s, (*here, i), scope, bare, errors) for i, s in enumerate(spec))
            items.append(Any_(subs) if key == "any" else All(subs))
        elif key == "not":
            items.append(Not(_parse(spec, here, scope, bare, errors)))
        else:
            items.extend(_parse_path(str(key), spec, here, scope, bare, errors))
    return items[0] if len(items) == 1 else All(tuple(items))


def _parse_path(key: str, spec: Any, at: tuple[str | int, ...], scope: str, bare: str | None,
                errors: list[ConditionError]) -> Iterator[Predicate]:
    path = canonical_path(key, scope, bare)
    if path is None:
        allowed = ("traits.<x>, account.<x>" if scope == "lead"
                   else "properties.<x>, context.<x>, event, type, path")
        errors.append(ConditionError(at, f"path {key!r} cannot be read here", value=key,
                                     expected=allowed))
        return
    if not isinstance(spec, Mapping):
        # Shorthand: a scalar means eq, a list means in.
        spec = {"in": spec} if isinstance(spec, list) else {"eq": spec}
    if not spec:
        errors.append(ConditionError(at, "no operator given", expected=", ".join(OPERATORS)))
    for op, value in spec.items():
        pred = predicate(path, str(op), value, (*at, op), errors)
        if pred is not None:
            yield pred


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def predicate(path: str, op: str, value: Any, at: tuple[str | int, ...],
              errors: list[ConditionError]) -> Predicate | None:
    """One `{op: value}` on `path` read and checked (problems go to `errors`), or None."""
    def bad(message: str, expected: str) -> Predicate | None:
        errors.append(ConditionError(at, message, value=value, expected=expected))
        return None

    if op not in OPERATORS:
        errors.append(ConditionError(at, f"unknown operator {op!r}", value=op,
                                     expected=", ".join(OPERATORS),
                                     suggestion=suggest(op, OPERATORS,
                                                        aliases=OPERATOR_ALIASES)))
        return None
    compiled: Any = None
    if op in ("eq", "ne"):
        if not _is_scalar(value) or value is None:
            return bad(f"`{op}` takes one value", "a string, number or boolean")
    elif op in ("in", "not_in"):
        if not isinstance(value, list) or not all(_is_scalar(v) and v is not None
                                                  for v in value):
            return bad(f"`{op}` takes a list of values", "a list such as [a, b]")
        value = tuple(value)
    elif op in ("gt", "gte", "lt", "lte"):
        if not (_is_number(value) or isinstance(value, str)) or (
                _is_number(value) and not math.isfinite(value)):
            return bad(f"`{op}` compares with a number or a string", "a number or a string")
    elif op == "range":
        if (not isinstance(value, list) or len(value) != 2
                or not all(_is_number(v) for v in value)):
            return bad("`range` takes two numbers", "[low, high]")
        if value[0] > value[1]:
            return bad("`range` is [low, high] with low ≤ high", "[low, high]")
        value = (float(value[0]), float(value[1]))
    elif op == "exists":
        if not isinstance(value, bool):
            return bad("`exists` takes true or false", "true or false")
    elif op in ("glob", "regex", "contains"):
        if not isinstance(value, str):
            return bad(f"`{op}` takes a string", "a string")
        if op == "glob":
            compiled = glob_to_regex(value)
        elif op == "regex":
            try:
                compiled = re.compile(value)
            except re.error as exc:
                return bad(f"the regular expression does not compile: {exc}",
                           "a valid regular expression")
    elif op == "domain_in":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            return bad("`domain_in` takes a list of domains", "a list such as [rival.example]")
        value = tuple(v.lower().lstrip("@") for v in value)
    return Predicate(path, op, value, compiled)


# ----------------------------------------------------------------------------- evaluation

Resolver = Callable[[str], Any]


def evaluate(cond: Condition, resolve: Resolver) -> bool:
    """True if `cond` holds; `resolve(path)` returns the value at a canonical path or None."""
    if isinstance(cond, Predicate):
        return holds(cond, resolve(cond.path))
    if isinstance(cond, All):
        return all(evaluate(c, resolve) for c in cond.items)
    if isinstance(cond, Any_):
        return any(evaluate(c, resolve) for c in cond.items)
    return not evaluate(cond.item, resolve)


def as_number(value: Any) -> float | None:
    """The value as a number for comparisons; None where it is not one (see the format doc)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def equals(value: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(expected, bool) and value == expected
    if _is_number(expected):
        return _is_number(value) and float(value) == float(expected)
    return isinstance(value, str) and value == expected


def email_domain(value: str) -> str:
    return value.rsplit("@", 1)[-1].lower()


def holds(pred: Predicate, value: Any) -> bool:
    op, expected = pred.op, pred.value
    if op == "exists":
        present = value is not None and value != ""
        return present is expected
    if value is None:
        return False
    if op == "eq":
        return equals(value, expected)
    if op == "ne":
        return not equals(value, expected)
    if op == "in":
        return any(equals(value, e) for e in expected)
    if op == "not_in":
        return not any(equals(value, e) for e in expected)
    if op in ("gt", "gte", "lt", "lte"):
        left: Any
        right: Any
        if isinstance(expected, str):
            if not isinstance(value, str):
                return False
            left, right = value, expected
        else:
            number = as_number(value)
            if number is None:
                return False
            left, right = number, float(expected)
        if op == "gt":
            return bool(left > right)
        if op == "gte":
            return bool(left >= right)
        if op == "lt":
            return bool(left < right)
        return bool(left <= right)
    if op == "range":
        number = as_number(value)
        return number is not None and expected[0] <= number <= expected[1]
    if not isinstance(value, str):
        return False
    if op == "glob":
        return pred.compiled.fullmatch(value) is not None
    if op == "regex":
        return pred.compiled.search(value) is not None
    if op == "contains":
        return expected in value
    domain = email_domain(value)
    return any(domain == d or domain.endswith("." + d) for d in expected)


def paths(cond: Condition) -> set[str]:
    """Every path a condition reads."""
    if isinstance(cond, Predicate):
        return {cond.path}
    if isinstance(cond, All | Any_):
        return set().union(*(paths(c) for c in cond.items)) if cond.items else set()
    return paths(cond.item)
