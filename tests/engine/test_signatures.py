"""The rule flags of the batch plan (engine.sql.signatures), computed per event (`inline`) or per
distinct signature and joined back, equal `Matcher.matches` on real DuckDB."""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa
import pytest
from sqlglot import exp

from leadscore.engine.sql.signatures import INLINE_GLOBS, Signatures
from leadscore.events import Event
from leadscore.model.compiled import Matcher
from leadscore.model.schema import EventMatch

COLUMNS = {"type": "VARCHAR", "event": "VARCHAR", "path": "VARCHAR",
           "properties.topic": "VARCHAR"}
EVENTS: list[dict[str, Any]] = [
    {"type": "page", "event": None, "path": "/pricing"},
    {"type": "page", "event": None, "path": "/pricing/enterprise"},
    {"type": "page", "event": "Demo Requested", "path": "/products/paper/a4"},
    {"type": "page", "event": None, "path": "/products"},
    {"type": "page", "event": None, "path": None},
    {"type": "page", "event": None, "path": "/blog/a_b"},
    {"type": "page", "event": None, "path": "/blog/axb"},
    {"type": "page", "event": None, "path": "/p%q"},
    {"type": "page", "event": None, "path": "/docs/guide.pdf"},
    {"type": "track", "event": "Demo Requested", "path": "/pricing"},
    {"type": "track", "event": "Email Opened", "path": None, "properties.topic": "paint"},
    {"type": "track", "event": "Email Opened", "path": None, "properties.topic": None},
    {"type": "screen", "event": "Email Opened", "path": None},
    {"type": "track", "event": None, "path": None},
    {"type": "track", "event": "Page", "path": None},
]
SIMPLE = [{"page": "/pricing*"}, {"page": "/pricing/enterprise"},
          {"page": ["/products/*", "*.pdf"]}, {"page": "*"},
          {"event": "Demo Requested"}, {"event": ["Email Opened", "Page"]},
          {"event": "Email Opened", "where": {"properties.topic": {"exists": True}}}]
PATTERNS = [{"page": "/blog/a?b"}, {"page": "/p%q"}]


def _flags(specs: list[dict[str, Any]]) -> tuple[bool, list[list[bool]]]:
    """(inline?, each event's flags) as the batch plan computes them."""
    matchers = [(f"m{i}", Matcher.of(EventMatch(**spec))) for i, spec in enumerate(specs)]
    signatures = Signatures(matchers, COLUMNS)
    table = pa.Table.from_pylist([{"n": n, **{c: e.get(c) for c in COLUMNS}}
                                  for n, e in enumerate(EVENTS)])
    events = exp.Table(this=exp.to_identifier("events", quoted=True))
    staged = signatures.join(exp.select(exp.column("n"), *signatures.staged()).from_(events),
                             events, exp.true())
    flags = exp.select(*(exp.alias_(signatures.flag(name), name) for name, _ in matchers)) \
        .from_(staged.subquery("st")).order_by(exp.column("n"))
    con = duckdb.connect()
    con.register("events", table)
    return signatures.inline, [list(row) for row in con.sql(flags.sql(dialect="duckdb")).fetchall()]


def _expected(specs: list[dict[str, Any]]) -> list[list[bool]]:
    matchers = [Matcher.of(EventMatch(**spec)) for spec in specs]
    events = [Event(type=e["type"], event=e["event"], path=e["path"], lead_id="l",
                    timestamp=0, properties={"topic": e["properties.topic"]}
                    if e.get("properties.topic") else {}) for e in EVENTS]
    return [[m.matches(event) for m in matchers] for event in events]


@pytest.mark.parametrize("specs, inline", [(SIMPLE, True), (SIMPLE + PATTERNS, False)])
def test_flags_equal_matcher_matches(specs: list[dict[str, Any]], inline: bool) -> None:
    mode, flags = _flags(specs)
    assert mode is inline
    assert flags == _expected(specs)


def test_many_globs_are_matched_per_signature() -> None:
    specs: list[dict[str, Any]] = [{"page": f"/section{i}/*"} for i in range(INLINE_GLOBS + 1)]
    mode, flags = _flags(specs)
    assert mode is False
    assert flags == _expected(specs)
