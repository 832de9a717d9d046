"""The segment plan: every lead's memberships as of a moment, built as sqlglot expressions so
that one plan runs on DuckDB (`segments.batch`) and Spark (`segments.spark`) alike.

    base     every lead of the leads table and every lead with an event so far: its traits
             and `__entered` (its latest event at or before as_of, else as_of)
    counts   one pass over the events: per lead, one FILTER count per `did` / `not_did` test
    scores   per model a segment reads: the batch scores (`score.*`, `stage`, interests and the
             customer's recency/frequency/monetary/tenure, the `customer.*` of live)
    members  per segment, in dependency order: base ⟕ counts ⟕ scores ⟕ the members of each
             segment it reads with `in_segment`, filtered by its condition

`Stages` says how an engine keeps an intermediate table (a DuckDB temp table, a cached Spark
view) and scores a model; `evaluate` drives the plan through it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa
from sqlglot import exp

from leadscore.engine.sql.build import alias, and_, coalesce, col, not_, or_, table, text
from leadscore.engine.sql.conditions import column_kind, predicate
from leadscore.engine.sql.semantics import matches
from leadscore.errors import InputError
from leadscore.model import conditions as cond
from leadscore.model.schema import Model
from leadscore.segments.definition import (
    CUSTOMER_FIELDS,
    SCORE_FIELDS,
    And,
    Behaviour,
    InSegment,
    Node,
    Not,
    Or,
    Segment,
)
from leadscore.timeutil import US_PER_DAY

MEMBERS_SCHEMA = pa.schema([("lead_id", pa.string()), ("segment", pa.string()),
                            ("entered_at", pa.timestamp("us", tz="UTC"))])
ENTERED = "__entered"


class Stages(Protocol):
    """What the plan needs of an engine."""

    def keep(self, kind: str, query: exp.Query) -> str:
        """Materialise `query` as a new table or view; its name."""
        ...

    def score(self, model: Model) -> tuple[str, dict[str, str]]:
        """`model`'s batch scores (OUTPUT_COLUMNS and `interests`) as a table or view: its
        name and column types."""
        ...


@dataclass(frozen=True)
class Inputs:
    """The canonical events and leads tables (`leadscore.io`) and their column types."""

    events: str
    events_columns: Mapping[str, str]
    leads: str | None
    leads_columns: Mapping[str, str]


def check_models(segments: Sequence[Segment], models: Sequence[Model]) -> dict[str, Model]:
    by_model = {m.name: m for m in models}
    for segment in segments:
        if segment.model is not None and segment.model not in by_model:
            raise InputError(f"segment {segment.name!r} reads model {segment.model!r}, which "
                             f"was not given; models: {', '.join(sorted(by_model)) or '(none)'}")
    return by_model


def _not_after(as_of_us: int) -> exp.Expr:
    return exp.LTE(this=col("ts"), expression=exp.Literal.number(as_of_us))


def people(inputs: Inputs, as_of_us: int) -> exp.Select:
    """`lead_id`, the traits and `__entered` of every lead (base)."""
    seen: exp.Query = exp.select(col("lead_id")).distinct().from_(table(inputs.events)) \
        .where(_not_after(as_of_us))
    if inputs.leads is not None:
        seen = exp.union(seen, exp.select(col("lead_id")).from_(table(inputs.leads)),
                         distinct=True)
    latest = exp.select(col("lead_id"), alias(exp.Max(this=col("ts")), "latest")) \
        .from_(table(inputs.events)).where(_not_after(as_of_us)).group_by(col("lead_id"))
    traits = [c for c in inputs.leads_columns if c != "lead_id"]
    query = exp.select(col("lead_id", "p"), *(col(c, "l") for c in traits),
                       alias(coalesce(col("latest", "e"), exp.Literal.number(as_of_us)),
                           ENTERED)) \
        .from_(seen.subquery("p", copy=False))
    if inputs.leads is not None:
        query = query.join(table(inputs.leads, "l"), join_type="LEFT", on=exp.EQ(
            this=col("lead_id", "l"), expression=col("lead_id", "p")))
    return query.join(latest.subquery("e", copy=False), join_type="LEFT", on=exp.EQ(
        this=col("lead_id", "e"), expression=col("lead_id", "p")))


def behaviour_counts(segments: Sequence[Segment], inputs: Inputs, as_of_us: int
                     ) -> tuple[exp.Select | None, dict[int, str]]:
    """One pass over the events: per lead, `b<i>` = the events each `did` / `not_did` test
    counts (in its window); and id(behaviour) → its column. None without any test."""
    columns: dict[int, str] = {}
    counts: list[exp.Expr] = []
    for segment in segments:
        for behaviour in segment.behaviours:
            name = columns[id(behaviour)] = f"b{len(columns)}"
            hit = matches(behaviour.matcher, inputs.events_columns)
            if behaviour.within_days is not None:
                start = as_of_us - round(behaviour.within_days * US_PER_DAY)
                hit = and_(hit, exp.GTE(this=col("ts"), expression=exp.Literal.number(start)))
            counts.append(alias(exp.Filter(this=exp.Count(this=exp.Star()),
                                         expression=exp.Where(this=hit)), name))
    if not counts:
        return None, columns
    return exp.select(col("lead_id"), *counts).from_(table(inputs.events)) \
        .where(_not_after(as_of_us)).group_by(col("lead_id")), columns


def interest_weight(topic: str) -> exp.Expr:
    """The weight of `topic` in the scores' ranked `interests` (NULL if it has none): the
    first element of the list filtered by topic — `[0]` renders 1-based for DuckDB."""
    x = exp.to_identifier("x")
    same = exp.EQ(this=exp.Dot(this=x.copy(), expression=exp.to_identifier("topic")),
                  expression=text(topic))
    found = exp.ArrayFilter(this=col("interests", "s"),
                            expression=exp.Lambda(this=same, expressions=[x]))
    first = exp.Bracket(this=exp.Paren(this=found), expressions=[exp.Literal.number(0)])
    return exp.Dot(this=first, expression=exp.to_identifier("weight"))


class Conditions:
    """Segment trees to SQL over base (b), counts (c), scores (s) and members (i<k>)."""

    def __init__(self, columns: Mapping[str, tuple[exp.Column, str]],
                 behaviours: Mapping[int, str], members: Mapping[str, str]):
        self.columns = columns            # path → (column, SQL type)
        self.behaviours = behaviours      # id(behaviour) → count column
        self.members = members            # segment → alias of its joined member table

    def sql(self, node: Node) -> exp.Expr:
        if isinstance(node, cond.Predicate) and node.path.startswith("interest.") and \
                "score.interests" in self.columns:
            return predicate(node, interest_weight(node.path.split(".", 1)[1]), "double")
        if isinstance(node, cond.Predicate):
            found = self.columns.get(node.path)
            if found is None:
                return predicate(node, None, "other")
            column, sql_type = found
            return predicate(node, column.copy(), column_kind(sql_type))
        if isinstance(node, Behaviour):
            counted = coalesce(col(self.behaviours[id(node)], "c"), exp.Literal.number(0))
            hit: exp.Expr = exp.GTE(this=counted, expression=exp.Literal.number(node.at_least))
            return exp.not_(hit) if node.negated else hit
        if isinstance(node, InSegment):
            return exp.not_(exp.Is(this=col("lead_id", self.members[node.name]),
                                   expression=exp.Null()))
        if isinstance(node, And):
            return and_(*(self.sql(n) for n in node.items))
        if isinstance(node, Or):
            return or_(*(self.sql(n) for n in node.items))
        assert isinstance(node, Not)
        return not_(self.sql(node.item))


def _score_columns(columns: Mapping[str, str]) -> dict[str, tuple[exp.Column, str]]:
    """The paths a segment reads from a model's scores: `score.<field>`, `stage`,
    `customer.<field>` (the scores' own recency/frequency/monetary/tenure: like live, none
    for a lead the model does not apply to) and `score.interests`."""
    paths = {f"score.{f}": f for f in SCORE_FIELDS} | {"stage": "stage"} | {
        f"customer.{f}": f for f in CUSTOMER_FIELDS} | {"score.interests": "interests"}
    return {path: (col(name, "s"), columns[name]) for path, name in paths.items()
            if name in columns}


def member_query(segment: Segment, base: str, inputs: Inputs, counts: str | None,
                 behaviours: Mapping[int, str], scores: tuple[str, Mapping[str, str]] | None,
                 members: Mapping[str, str]) -> exp.Select:
    """`lead_id, __entered` of the members of one segment."""
    columns = {c: (col(c, "b"), t) for c, t in inputs.leads_columns.items() if c != "lead_id"}
    query = exp.select(col("lead_id", "b"), col(ENTERED, "b")).from_(table(base, "b"))

    def left_join(name: str, at: str) -> None:
        nonlocal query
        query = query.join(table(name, at), join_type="LEFT", on=exp.EQ(
            this=col("lead_id", at), expression=col("lead_id", "b")))

    if counts is not None:
        left_join(counts, "c")
    if scores is not None:
        left_join(scores[0], "s")
        columns |= _score_columns(scores[1])
    aliases: dict[str, str] = {}
    for name in sorted(segment.segments):
        aliases[name] = f"i{len(aliases)}"
        left_join(members[name], aliases[name])
    return query.where(Conditions(columns, behaviours, aliases).sql(segment.when))


def memberships(segments: Sequence[Segment], members: Mapping[str, str]) -> exp.Query:
    """`lead_id, segment, entered_at` of every member, segments in the order given, then
    lead_id."""
    parts = [exp.select(col("lead_id"), alias(text(segment.name), "segment"),
                        alias(col(ENTERED), "entered_at"),
                        alias(exp.Literal.number(i), "__order")).from_(
        table(members[segment.name])) for i, segment in enumerate(segments)]
    union: exp.Query = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False)
    return exp.select(col("lead_id"), col("segment"), col("entered_at")) \
        .from_(union.subquery("m", copy=False)).order_by(col("__order"), col("lead_id"))


def evaluate(stages: Stages, segments: Sequence[Segment], models: Mapping[str, Model],
             inputs: Inputs, as_of_us: int) -> exp.Query | None:
    """Materialise base, counts, scores and members through `stages`; the query of the
    memberships (None without segments)."""
    if not segments:
        return None
    base = stages.keep("base", people(inputs, as_of_us))
    count_query, behaviours = behaviour_counts(segments, inputs, as_of_us)
    counts = stages.keep("counts", count_query) if count_query is not None else None
    scored = {name: stages.score(models[name])
              for name in sorted({s.model for s in segments if s.model is not None})}
    members: dict[str, str] = {}
    for segment in segments:
        scores = scored[segment.model] if segment.model is not None else None
        members[segment.name] = stages.keep("members", member_query(
            segment, base, inputs, counts, behaviours, scores, members))
    return memberships(segments, members)


def members_table(result: pa.Table) -> pa.Table:
    """The memberships query's rows (any engine) in MEMBERS_SCHEMA."""
    return pa.Table.from_arrays(
        [result.column("lead_id").cast(pa.string()),
         result.column("segment").cast(pa.string()),
         result.column("entered_at").cast(pa.int64()).cast(pa.timestamp("us", tz="UTC"))],
        schema=MEMBERS_SCHEMA)
