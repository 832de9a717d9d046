"""Every operator compiled to SQL gives exactly `conditions.holds` on real DuckDB."""

from __future__ import annotations

import math
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from leadscore.engine.sql.conditions import to_sql
from leadscore.model import conditions as cond

# One column per kind of value, with the awkward values each kind can hold.
VALUES: dict[str, tuple[pa.DataType, list[Any]]] = {
    "s": (pa.string(), [
        None, "", "a", "abc", "B", "42", " 42 ", "4.5e1", "5", "5.0", "nan", "inf", "-Infinity",
        "1_000", "0x10", "x@Rival-Art.example", "x@sub.rival-art.example", "rival-art.example",
        "x@notrival-art.example", "a@rival-art.example@gmail.com", "/products/paper/a4",
        "/products", "/products/", "a_b%c", "a\\b", "true", "multi\nline", "Ünïcode", "pricing",
    ]),
    "i": (pa.int64(), [None, 0, 5, 42, -3, 44, 25, 64, 65]),
    "d": (pa.float64(), [None, 5.0, 4.5, 42.0, math.nan, math.inf, -math.inf, 44.0, 25.0]),
    "b": (pa.bool_(), [None, True, False]),
}

OPERATIONS: list[dict[str, Any]] = [
    {"eq": 5}, {"eq": 5.0}, {"eq": 4.5}, {"eq": "5"}, {"eq": "a"}, {"eq": True}, {"eq": False},
    {"eq": ""}, {"ne": 5}, {"ne": "a"}, {"ne": True}, {"in": [5, "a", True]},
    {"in": ["abc", "B"]}, {"in": [42, 44.0]}, {"not_in": [5, "a"]}, {"not_in": [False]},
    {"gt": 5}, {"gte": 42}, {"lt": 44.5}, {"lte": -3}, {"gt": "a"}, {"lte": "B"},
    {"gte": "/products"}, {"range": [25, 44]}, {"range": [4.5, 5]}, {"exists": True},
    {"exists": False}, {"glob": "/products/*"}, {"glob": "a_b%c"}, {"glob": "?"},
    {"glob": "a\\b"}, {"glob": "*"}, {"regex": "^a"}, {"regex": "[0-9]+"}, {"regex": "line$"},
    {"contains": "b"}, {"contains": "_b%"}, {"contains": ""},
    {"domain_in": ["rival-art.example"]}, {"domain_in": ["gmail.com", "example"]},
]


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    for name, (dtype, values) in VALUES.items():
        table = pa.table({"n": pa.array(range(len(values)), pa.int64()),
                          f"properties.{name}": pa.array(values, dtype)})
        connection.register(f"t_{name}", table)
    return connection


def _check(con: duckdb.DuckDBPyConnection, name: str, raw: dict[str, Any]) -> None:
    dtype, values = VALUES[name]
    condition = cond.parse(raw, scope="event")
    columns = {f"properties.{name}": {pa.string(): "VARCHAR", pa.int64(): "BIGINT",
                                      pa.float64(): "DOUBLE", pa.bool_(): "BOOLEAN"}[dtype]}
    sql = to_sql(condition, columns).sql(dialect="duckdb")
    got = [row[0] for row in con.sql(f"SELECT {sql} FROM t_{name} ORDER BY n").fetchall()]
    expected = [cond.evaluate(condition, lambda _path, v=v: v) for v in values]
    assert got == expected, (raw, sql, [(v, g, e) for v, g, e in
                                        zip(values, got, expected, strict=True) if g != e])


@pytest.mark.parametrize("name", list(VALUES))
@pytest.mark.parametrize("operation", OPERATIONS, ids=str)
def test_each_operator_matches_holds(con: duckdb.DuckDBPyConnection, name: str,
                                     operation: dict[str, Any]) -> None:
    _check(con, name, {f"properties.{name}": operation})


@pytest.mark.parametrize("name", list(VALUES))
@pytest.mark.parametrize("operation", OPERATIONS, ids=str)
def test_not_is_the_exact_complement(con: duckdb.DuckDBPyConnection, name: str,
                                     operation: dict[str, Any]) -> None:
    _check(con, name, {"not": {f"properties.{name}": operation}})


def test_combinators(con: duckdb.DuckDBPyConnection) -> None:
    _check(con, "s", {"any": [{"properties.s": {"eq": "a"}}, {"properties.s": {"glob": "/p*"}}],
                      "properties.s": {"exists": True}})
    _check(con, "i", {"all": [{"properties.i": {"gte": 5}}, {"not": {"properties.i": 42}}]})


def test_a_path_without_a_column_is_a_missing_value() -> None:
    for raw, expected in [({"exists": False}, "TRUE"), ({"exists": True}, "FALSE"),
                          ({"ne": 5}, "FALSE"), ({"not_in": ["a"]}, "FALSE")]:
        condition = cond.parse({"properties.nope": raw}, scope="event")
        assert to_sql(condition, {}).sql() == expected


def test_a_type_that_can_never_match_is_false() -> None:
    condition = cond.parse({"properties.topic": {"eq": 5}}, scope="event")
    assert to_sql(condition, {"properties.topic": "VARCHAR"}).sql() == "FALSE"
    condition = cond.parse({"properties.n": {"glob": "a*"}}, scope="event")
    assert to_sql(condition, {"properties.n": "BIGINT"}).sql() == "FALSE"


def test_renders_for_spark() -> None:
    condition = cond.parse({"any": [{"properties.s": {"glob": "/a_*"}},
                                    {"properties.s": {"gte": 4.5}},
                                    {"properties.s": {"regex": "x+"}}]}, scope="event")
    sql = to_sql(condition, {"properties.s": "VARCHAR"}).sql(dialect="spark")
    assert "ESCAPE" in sql and "`properties.s`" in sql and "RLIKE" in sql


def test_like_says_escape_only_when_the_pattern_escapes_a_character() -> None:
    # DuckDB's LIKE has no default escape character; without one in the pattern, the plain
    # form means the same and runs as a prefix/suffix test.
    import duckdb

    plain = cond.parse({"properties.s": {"glob": "/a*"}}, scope="event")
    escaped = cond.parse({"properties.s": {"glob": "/a_b*"}}, scope="event")
    columns = {"properties.s": "VARCHAR"}
    assert "ESCAPE" not in to_sql(plain, columns).sql(dialect="duckdb")
    assert "ESCAPE" in to_sql(escaped, columns).sql(dialect="spark")
    rows = duckdb.sql("SELECT " + ", ".join(
        f"{to_sql(c, columns).sql(dialect='duckdb')} AS c{i}"
        for i, c in enumerate((plain, escaped))) +
        ' FROM (VALUES (\'/a_b/x\'), (\'/aXb\'), (\'/b\')) AS t("properties.s")').fetchall()
    assert rows == [(True, True), (True, False), (False, False)]
