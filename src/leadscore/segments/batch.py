"""Segments in batch: every lead's memberships as of a moment, on DuckDB.

For each model the segments name, the batch engine scores every lead (`score_many`) and the
customer lifecycle query adds recency/frequency/monetary/tenure (`rfm_many`); one pass over the
events counts, per lead, the events of every `did` / `not_did` test (in its window); each
segment is then one SELECT over those, in dependency order (a segment's members are a table
the segments reading it with `in_segment` look up).

`entered_at` of a member is the time of its latest event at or before `as_of` (the last change
the batch can see to what its conditions read), or `as_of` for a lead without events. The live
service records the moment it saw the lead enter, which is that same time when an event made it
a member.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import pyarrow as pa
from sqlglot import exp

from leadscore.engine.batch import _as_of_us, _input, _table_columns, connect, score_many
from leadscore.engine.compiler import _matches
from leadscore.engine.rfm import rfm_sql
from leadscore.engine.sqlconditions import and_, column_kind, not_, or_, predicate
from leadscore.errors import InputError
from leadscore.model import conditions as cond
from leadscore.model.schema import Model
from leadscore.segments.definition import And, Behaviour, InSegment, Node, Not, Or, Segment
from leadscore.timeutil import US_PER_DAY

MEMBERS_SCHEMA = pa.schema([("lead_id", pa.string()), ("segment", pa.string()),
                            ("entered_at", pa.timestamp("us", tz="UTC"))])
_sequence = itertools.count()


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Compiler:
    """Segment trees to SQL over `base` (b), the scores (s), rfm (r) of one model."""

    def __init__(self, columns: Mapping[str, tuple[str, str]], behaviours: Mapping[int, str],
                 members: Mapping[str, str]):
        self.columns = columns            # path → (qualified SQL column, SQL type)
        self.behaviours = behaviours      # id(behaviour) → count column
        self.members = members            # segment → member table

    def sql(self, node: Node) -> exp.Expr:
        if isinstance(node, cond.Predicate) and node.path.startswith("interest.") and \
                "score.interests" in self.columns:
            topic = node.path.split(".", 1)[1].replace("'", "''")
            weight: exp.Expr = exp.maybe_parse(
                f"list_extract(list_filter(s.interests, x -> x.topic = '{topic}'), 1).weight",
                dialect="duckdb")
            return predicate(node, weight, "double")
        if isinstance(node, cond.Predicate):
            found = self.columns.get(node.path)
            if found is None:
                return predicate(node, None, "other")
            column, sql_type = found
            return predicate(node, exp.column(column.split(".", 1)[1], table=column.split(
                ".", 1)[0], quoted=True), column_kind(sql_type))
        if isinstance(node, Behaviour):
            counted = exp.func("COALESCE", exp.column(self.behaviours[id(node)], table="c",
                                                      quoted=True), exp.Literal.number(0))
            hit: exp.Expr = exp.GTE(this=counted, expression=exp.Literal.number(node.at_least))
            return exp.not_(hit) if node.negated else hit
        if isinstance(node, InSegment):
            table = self.members[node.name]
            return exp.In(this=exp.column("lead_id", table="b", quoted=True),
                          query=exp.select("lead_id").from_(table).subquery())
        if isinstance(node, And):
            return and_(*(self.sql(n) for n in node.items))
        if isinstance(node, Or):
            return or_(*(self.sql(n) for n in node.items))
        assert isinstance(node, Not)
        return not_(self.sql(node.item))


def segment_many(segments: Sequence[Segment], models: Sequence[Model], events: Any,
                 leads: Any = None, *, as_of: Any = None,
                 con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """One row per lead and segment it belongs to at `as_of`: `lead_id, segment, entered_at`
    (segments in dependency order — see `load_segments` — then lead_id)."""
    by_model = {m.name: m for m in models}
    for segment in segments:
        if segment.model is not None and segment.model not in by_model:
            raise InputError(f"segment {segment.name!r} reads model {segment.model!r}, which "
                             f"was not given; models: {', '.join(sorted(by_model)) or '(none)'}")
    as_of_us = _as_of_us(as_of)
    own = con is None
    connection = connect() if con is None else con
    tag = next(_sequence)
    created: list[str] = []
    try:
        ev = _input(events, connection, "events")
        ld = _input(leads, connection, "leads") if leads is not None else None
        ev_columns = _table_columns(connection, ev)
        ld_columns = _table_columns(connection, ld) if ld else {}

        def table(kind: str) -> str:
            name = f"__seg_{kind}_{tag}_{len(created)}"
            created.append(name)
            return name

        # The people: every lead of the leads table and every lead with an event so far.
        base = table("base")
        trait_columns = [c for c in ld_columns if c != "lead_id"]
        people = f'SELECT DISTINCT lead_id FROM "{ev}" WHERE ts <= {as_of_us}'
        if ld:
            people += f' UNION SELECT lead_id FROM "{ld}"'
        select_traits = "".join(f", l.{_q(c)}" for c in trait_columns)
        join_leads = f' LEFT JOIN "{ld}" l USING (lead_id)' if ld else ""
        connection.sql(
            f'CREATE TEMP TABLE "{base}" AS SELECT p.lead_id{select_traits}, '
            f"COALESCE(e.latest, {as_of_us}) AS __entered FROM ({people}) p{join_leads} "
            f'LEFT JOIN (SELECT lead_id, MAX(ts) AS latest FROM "{ev}" WHERE ts <= {as_of_us} '
            "GROUP BY lead_id) e USING (lead_id)")
        # Behaviour counts: one pass, one FILTER aggregate per did/not_did test.
        behaviours: dict[int, str] = {}
        filters = []
        for segment in segments:
            for b in segment.behaviours:
                name = f"b{len(behaviours)}"
                behaviours[id(b)] = name
                hit = _matches(b.matcher, ev_columns)
                if b.within_days is not None:
                    start = as_of_us - round(b.within_days * US_PER_DAY)
                    hit = and_(hit, exp.GTE(this=exp.column("ts"),
                                            expression=exp.Literal.number(start)))
                filters.append(f"COUNT(*) FILTER (WHERE {hit.sql(dialect='duckdb')}) AS {name}")
        counts = table("counts")
        if filters:
            connection.sql(f'CREATE TEMP TABLE "{counts}" AS SELECT lead_id, '
                           f'{", ".join(filters)} FROM "{ev}" WHERE ts <= {as_of_us} '
                           "GROUP BY lead_id")
        # Scores and customer facts of each model read.
        scored: dict[str, tuple[str, str]] = {}
        for name in sorted({s.model for s in segments if s.model is not None}):
            scores = table("scores")
            rfm = table("rfm")
            result = score_many(by_model[name], ev, ld, as_of=as_of_us, con=connection)
            connection.register(f"{scores}_arrow", result)
            connection.sql(f'CREATE TEMP TABLE "{scores}" AS SELECT * FROM "{scores}_arrow"')
            connection.unregister(f"{scores}_arrow")
            connection.sql(f'CREATE TEMP TABLE "{rfm}" AS '
                           f"{rfm_sql(by_model[name], ev, ev_columns, as_of_us)}")
            scored[name] = (scores, rfm)
        members: dict[str, str] = {}
        outputs: list[str] = []
        for segment in segments:
            columns: dict[str, tuple[str, str]] = {
                c: (f"b.{c}", t) for c, t in ld_columns.items() if c != "lead_id"}
            joins = f'"{base}" b'
            if filters:
                joins += f' LEFT JOIN "{counts}" c ON c.lead_id = b.lead_id'
            if segment.model is not None:
                scores, rfm = scored[segment.model]
                for c, t in _table_columns(connection, scores).items():
                    if c in ("lead_id", "model", "as_of"):
                        continue
                    columns["stage" if c == "stage" else f"score.{c}"] = (f"s.{c}", t)
                for c, t in _table_columns(connection, rfm).items():
                    if c not in ("lead_id", "model"):
                        columns[f"customer.{c}"] = (f"r.{c}", t)
                joins += (f' LEFT JOIN "{scores}" s ON s.lead_id = b.lead_id'
                          f' LEFT JOIN "{rfm}" r ON r.lead_id = b.lead_id')
            where = _Compiler(columns, behaviours, members).sql(segment.when)
            member = members[segment.name] = table("members")
            connection.sql(f'CREATE TEMP TABLE "{member}" AS SELECT b.lead_id, b.__entered '
                           f'FROM {joins} WHERE {where.sql(dialect="duckdb")}')
            label = segment.name.replace("'", "''")
            outputs.append(f"SELECT lead_id, '{label}' AS segment, __entered AS entered_at, "
                           f'{len(outputs)} AS __order FROM "{member}"')
        if not outputs:
            return MEMBERS_SCHEMA.empty_table()
        result = connection.sql(" UNION ALL ".join(outputs) + " ORDER BY __order, lead_id"
                                ).to_arrow_table()
        return pa.Table.from_arrays(
            [result.column("lead_id").cast(pa.string()),
             result.column("segment").cast(pa.string()),
             result.column("entered_at").cast(pa.int64()).cast(pa.timestamp("us", tz="UTC"))],
            schema=MEMBERS_SCHEMA)
    finally:
        for name in created:
            connection.sql(f'DROP TABLE IF EXISTS "{name}"')
        if own:
            connection.close()
