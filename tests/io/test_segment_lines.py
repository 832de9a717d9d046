"""JSON lines read by DuckDB (`io.segment_lines`) give the `messages` relation the Python reader
(`segment.message_table`) gives: the same rows, column types and rejected lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadscore.errors import EventError
from leadscore.io import segment, segment_lines
from leadscore.io.readers import read_messages

T = "2026-01-01T00:00:00Z"
TRICKY: list[Any] = [
    {"messageId": "m1", "type": "track", "userId": "u1", "event": "E", "timestamp": T,
     "properties": {"a": 1, "b": "x", "c": True, "d": 1.5, "n": None, "o": {"p": 2}}},
    "",
    {"messageId": "m2", "type": "page", "anonymousId": "a1",
     "timestamp": "2026-01-01T01:00:00.5+02:00",
     "properties": {"path": "/x?q=1#f", "a": 2, "b": 3, "d": 2, "o": None}},
    "not json",
    "[1, 2]",
    {"messageId": "m3", "type": "page", "userId": "u1", "timestamp": T,
     "properties": {"url": "https://x.example/p/q?z"}},                # url: Python's urlsplit
    {"messageId": "m4", "type": "page", "userId": "u1", "timestamp": T,
     "context": {"page": {"path": "/ctx"}}, "properties": {"b": 2.5}},  # 2.5 in a text column
    {"type": "track", "userId": "u2", "event": "E", "timestamp": T},    # no messageId: a hash
    {"messageId": "m5", "type": "track", "userId": "u2", "event": "E", "timestamp": 1767225600},
    {"messageId": "m6", "type": "identify", "userId": "u2",
     "traits": {"email": "x@y", "age": 30, "company": {"id": "acme", "plan": "pro"}}},
    {"messageId": "m7", "type": "identify", "userId": "u3", "anonymousId": "a1", "timestamp": T,
     "traits": {"email": "z@y", "age": 31.5, "tags": ["a", "b"], "company": "Cy"}},
    {"messageId": "m8", "type": "group", "userId": "u3", "groupId": "g1", "timestamp": T,
     "traits": {"id": "g1", "industry": "sw", "size": {"n": 5}}},
    {"messageId": "m9", "type": "alias", "userId": "u3", "previousId": "old", "timestamp": T},
    {"messageId": "m10", "type": "alias", "userId": "u3", "timestamp": T},
    {"messageId": "m11", "type": "screen", "userId": "u3", "name": "Home", "timestamp": T},
    {"messageId": "m12", "type": "bogus", "userId": "u3"},
    {"messageId": "m13", "type": "track", "userId": "u3", "timestamp": T},
    {"messageId": "m14", "type": "track", "userId": True, "event": "E", "timestamp": T},
    {"messageId": "  ", "type": "track", "userId": "u4", "event": "E", "timestamp": T},
    {"messageId": "m15", "type": "track", "userId": "u4", "event": "E",
     "timestamp": "2026-02-30T00:00:00Z"},
    {"messageId": "m16", "type": "track", "userId": "u4", "event": "E",
     "timestamp": "2026-01-04T00:00:00"},                                # naive: UTC
    {"messageId": "m17", "type": "track", "userId": "u4", "event": "E", "sentAt": T,
     "properties": {"big": 12345678901234567890}},
    {"messageId": "m18", "type": "track", "userId": "u4", "event": "E", "timestamp": T,
     "properties": []},
    {"messageId": "m19", "type": "identify", "userId": "u5", "traits": {"a": {"b": 1}}},
    {"messageId": "m20", "type": "identify", "userId": "u5", "traits": {"a": "flat"}},
    {"messageId": "m21", "type": "identify", "userId": "u5", "originalTimestamp": T,
     "traits": {"mixed": 1}},
    {"messageId": "m22", "type": "identify", "userId": "u6", "traits": {"mixed": "one"}},
    {"messageId": "m23", "type": "identify", "userId": "u6", "traits": {"mixed": 2.5, "z": False}},
    {"messageId": "m24", "type": "track", "userId": 7, "event": "E", "timestamp": T},
    {"messageId": "m25", "type": "track", "userId": "u7", "event": "E", "timestamp": T,
     "properties": {"x": "\u00e9\n"}, "context": {"ip": "1.2.3.4", "page": {"path": "/c"}}},
    "   ",
    {"messageId": "m26", "type": "page", "userId": "u7", "name": "P", "timestamp": T,
     "properties": {"path": ""}, "context": {"page": {"path": "/fromctx#x"}}},
    {"messageId": "m27", "type": "group", "userId": "u7", "timestamp": T},
    {"messageId": "m28", "type": "identify", "userId": "u8", "traits": None, "timestamp": None},
    {"messageId": "m29", "type": "identify", "userId": "u8", "traits": {"account": {"name": "A"}}},
    {"messageId": "m30", "type": "track", "userId": 7, "anonymousId": "a9", "event": "E",
     "timestamp": T},                                       # a number for an id: Python's str
]


def write(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def both(path: Path, strict: bool = False) -> tuple[pa.Table, pa.Table, segment.Rejected,
                                                     segment.Rejected]:
    expected, rejected = segment.message_table(path, strict=strict)
    con = duckdb.connect()
    con.sql("SET TimeZone = 'UTC'")      # how Arrow names the zone, not the values
    _, found_rejected = segment_lines.read_message_lines(path, con, "m", strict=strict)
    return expected, con.sql("SELECT * FROM m").to_arrow_table(), rejected, found_rejected


def assert_same(path: Path) -> None:
    expected, found, rejected, found_rejected = both(path)
    assert [(r, f, why, v) for r, f, why, v in zip(
        rejected.rows, rejected.fields, rejected.reasons, rejected.values, strict=True)] == [
        (r, f, why, v) for r, f, why, v in zip(
            found_rejected.rows, found_rejected.fields, found_rejected.reasons,
            found_rejected.values, strict=True)]
    assert {f.name: f.type for f in expected.schema} == {f.name: f.type for f in found.schema}

    def rows(table: pa.Table) -> list[str]:
        return sorted(json.dumps(r, sort_keys=True, default=str)
                      for r in table.select(expected.column_names).to_pylist())

    assert rows(expected) == rows(found)


def test_tricky_lines_read_as_python_reads_them(tmp_path: Path) -> None:
    source = write(tmp_path / "m.jsonl", TRICKY)
    assert_same(source)
    expected, _, rejected, _ = both(source)
    assert expected.num_rows == 25 and len(rejected) == 9     # the corpus covers both ways


def test_plain_lines_never_reach_the_python_reader(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [m for m in TRICKY if isinstance(m, dict) and m.get("messageId") in (
        "m1", "m2", "m8", "m9", "m11", "m19", "m21", "m22", "m25", "m26", "m28")]
    source = write(tmp_path / "m.jsonl", lines)
    expected, _ = segment.message_table(source, strict=True)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a plain line went to the Python reader")

    monkeypatch.setattr(segment, "message_row", refuse)
    con = duckdb.connect()
    rows, rejected = segment_lines.read_message_lines(source, con, "m", strict=True)
    assert rows == expected.num_rows == len(lines) and len(rejected) == 0


def test_strict_raises_on_the_first_bad_line_as_python_does(tmp_path: Path) -> None:
    source = write(tmp_path / "m.jsonl", TRICKY)
    with pytest.raises(EventError) as python:
        segment.message_table(source, strict=True)
    with pytest.raises(EventError) as duck:
        segment_lines.read_message_lines(source, duckdb.connect(), "m", strict=True)
    assert str(duck.value) == str(python.value) and "row 14" in str(python.value)


@pytest.mark.parametrize("content", [
    b'\xef\xbb\xbf{"messageId": "b", "type": "track", "userId": "u", "event": "E"}\n',
    b'{"messageId": "c", "type": "track",\r"userId": "u", "event": "E", "timestamp": 1}\n',
    b'{"messageId": "d", "type": "track", "userId": "u", "event": "E\x01"}\n'])
def test_files_duckdb_cannot_split_as_python_are_read_by_python(tmp_path: Path,
                                                                 content: bytes) -> None:
    source = tmp_path / "m.jsonl"
    source.write_bytes(content + json.dumps(TRICKY[0]).encode() + b"\n")
    expected, rejected = segment.message_table(source, strict=False)
    con = duckdb.connect()
    report = read_messages(source, con, name="m")
    assert (report.rows, report.rejected) == (expected.num_rows, len(rejected))
    assert report.rejected_rows["row"].to_pylist() == rejected.rows


scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.text(alphabet="ab?#/ é", max_size=4))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=2), st.dictionaries(st.sampled_from("xyz"), inner, max_size=2)),
    max_leaves=4)
objects = st.dictionaries(st.sampled_from(["a", "b", "path", "url", "company", "id"]), values,
                          max_size=3)
stamps = st.one_of(st.none(), st.just(T), st.just("2026-01-01T00:00:00.123456+01:00"),
                   st.just("2026-01-01"), st.integers(1_700_000_000, 1_800_000_000),
                   st.just("soon"))
ids = st.one_of(st.none(), st.sampled_from(["u1", "u2", " ", "", "é"]), st.integers(0, 9),
                st.booleans())
message = st.fixed_dictionaries({"type": st.sampled_from(
    ["track", "page", "screen", "identify", "alias", "group", "other"])}, optional={
    "messageId": ids, "userId": ids, "anonymousId": ids, "previousId": ids, "groupId": ids,
    "timestamp": stamps, "originalTimestamp": stamps, "sentAt": stamps, "event": ids,
    "name": ids, "properties": st.one_of(objects, values), "context": st.one_of(objects, values),
    "traits": st.one_of(objects, values)})


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(message, st.sampled_from(["", "{", "7"])), min_size=1, max_size=12))
def test_any_lines_read_as_python_reads_them(tmp_path: Path, lines: list[Any]) -> None:
    assert_same(write(tmp_path / "h.jsonl", lines))
