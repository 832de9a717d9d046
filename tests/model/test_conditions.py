from __future__ import annotations

from typing import Any

import pytest

from leadscore.model import conditions as c


def check(raw: dict[str, Any], values: dict[str, Any], scope: str = "lead") -> bool:
    tree = c.parse(raw, scope=scope, bare="traits" if scope == "lead" else None)
    return c.evaluate(tree, values.get)


@pytest.mark.parametrize(("op", "arg", "value", "expected"), [
    ("eq", 5, 5.0, True), ("eq", 5, "5", False), ("eq", "a", "a", True), ("eq", "a", "A", False),
    ("eq", True, True, True), ("eq", True, 1, False), ("eq", 1, True, False),
    ("ne", "a", "b", True), ("ne", "a", None, False),
    ("in", ["a", 2], 2, True), ("in", ["a", 2], "2", False), ("not_in", ["a"], "b", True),
    ("gt", 18, 19, True), ("gt", 18, "19", True), ("gt", 18, "abc", False),
    ("gt", 18, True, False), ("lte", 18, 18, True), ("lt", "m", "a", True), ("lt", "m", 1, False),
    ("range", [25, 44], 25, True), ("range", [25, 44], 44.0, True), ("range", [25, 44], 45, False),
    ("exists", True, "", False), ("exists", True, 0, True), ("exists", False, None, True),
    ("glob", "/products/*", "/products/paper/a4", True), ("glob", "/p?", "/pa", True),
    ("glob", "/p?", "/pab", False), ("glob", "a*", 5, False),
    ("regex", "^ab+", "abbb", True), ("regex", "b", "abc", True), ("regex", "x", 1, False),
    ("contains", "art", "smart", True), ("contains", "Art", "smart", False),
    ("domain_in", ["rival.example"], "Bob@Rival.Example", True),
    ("domain_in", ["rival.example"], "bob@eu.rival.example", True),
    ("domain_in", ["rival.example"], "bob@notrival.example", False),
    ("domain_in", ["rival.example"], "rival.example", True),
])
def test_operators(op: str, arg: Any, value: Any, expected: bool) -> None:
    assert check({"x": {op: arg}}, {"traits.x": value}) is expected


def test_missing_values_never_match_but_exists_false() -> None:
    for op, arg in [("eq", 1), ("ne", 1), ("not_in", [1]), ("gt", 1), ("glob", "*")]:
        assert check({"x": {op: arg}}, {}) is False
    assert check({"x": {"exists": False}}, {}) is True
    assert check({"not": {"x": {"eq": 1}}}, {}) is True


def test_combinators_and_shorthands() -> None:
    raw = {"any": [{"country": "DE"}, {"country": ["AT", "CH"]}], "age": {"gte": 18}}
    assert check(raw, {"traits.country": "CH", "traits.age": 30})
    assert not check(raw, {"traits.country": "FR", "traits.age": 30})
    assert not check(raw, {"traits.country": "DE", "traits.age": 3})
    assert check({"all": [{"a": 1}, {"not": {"b": 1}}]}, {"traits.a": 1, "traits.b": 2})


def test_paths_by_scope() -> None:
    assert c.parse({"account.industry": "x"}, scope="lead", bare="traits") == c.Predicate(
        "account.industry", "eq", "x")
    assert check({"properties.topic": {"exists": True}}, {"properties.topic": "t"}, "event")
    with pytest.raises(c.ConditionError, match="cannot be read here"):
        c.parse({"topic": 1}, scope="event")


def test_unknown_operator_suggests() -> None:
    problems = c.problems({"x": {"equal": 1, "btween": [1, 2]}}, scope="lead", bare="traits")
    assert [(p.path, p.suggestion) for p in problems] == [
        (("x", "equal"), "eq"), (("x", "btween"), None)]
