"""Segment's and RudderStack's warehouse tables as the stream's `messages` relation
(`leadscore compile --layout segment`): the tables their loaders write into one schema —
`tracks`, `pages`, `identifies`, `groups`, `aliases`, and a table per track event named by the
event (`Order Completed` → `order_completed`) holding its properties — become one message per
row, and the stream stage (`engine.sql.stream`, the semantics of issue #15) makes the leads,
their traits and accounts from them as of T.

A column of `identifies` other than the loader's own is a trait, of `groups` an account trait,
of a per-event table or `pages` a property (`pages.title` is `properties.title`). A track
event whose properties a model reads is read from its own table, every other one from
`tracks`. Nested values are flattened by the loaders with `_` (`address_city`): they keep that
name here."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlglot import exp

from leadscore.engine.sql.build import alias, col, text
from leadscore.engine.sql.dialects import Dialect
from leadscore.engine.sql.stream import Names, compile_stream
from leadscore.engine.sql.warehouse import kind_of, scores_statement
from leadscore.model import conditions as cond
from leadscore.model.compiled import CUSTOMER_RANK, Matcher, compile_model
from leadscore.model.purchases import VALUE_PATHS
from leadscore.model.schema import Model

TABLES = ("tracks", "pages", "identifies", "groups", "aliases")
# The loaders' own columns: never a property or a trait.
LOADER = frozenset({
    "id", "anonymous_id", "user_id", "received_at", "sent_at", "original_timestamp",
    "timestamp", "uuid_ts", "loaded_at", "event", "event_text", "group_id", "previous_id",
    "path", "channel", "request_ip", "message_id", "rudder_id", "type"})
MESSAGE = {"message_id": "VARCHAR", "type": "VARCHAR", "user_id": "VARCHAR",
           "anonymous_id": "VARCHAR", "previous_id": "VARCHAR",
           "timestamp": "TIMESTAMP WITH TIME ZONE", "event": "VARCHAR", "path": "VARCHAR",
           "account_id": "VARCHAR"}


# An identify's account object (`ingest.validate.company_account`): the first of these traits
# whose id, name or domain names an account; the loaders flatten it to `company_id`, … columns.
ACCOUNT_OBJECTS = ("company", "account")
ACCOUNT_KEYS = ("id", "name", "domain")


def company_account(columns: Mapping[str, str]) -> tuple[exp.Expr, dict[str, exp.Expr]]:
    """An identifies row's account id (NULL: none) and its traits (`account.<key>`), from the
    flattened account objects, the first object that names an account winning."""
    names: list[tuple[exp.Expr, str]] = []
    for prefix in ACCOUNT_OBJECTS:
        found = [exp.Nullif(this=exp.cast(col(f"{prefix}_{k}"), exp.DataType.build("VARCHAR")),
                            expression=text("")) for k in ACCOUNT_KEYS
                 if f"{prefix}_{k}" in columns]
        if found:
            names.append((exp.func("COALESCE", *found) if len(found) > 1 else found[0],
                          prefix))
    if not names:
        return exp.cast(exp.Null(), exp.DataType.build("VARCHAR")), {}
    account_id = exp.func("COALESCE", *(n for n, _ in names)) if len(names) > 1 \
        else names[0][0]
    traits: dict[str, exp.Expr] = {}
    keys = sorted({c.split("_", 1)[1] for c in columns for _, prefix in names
                   if c.startswith(prefix + "_")} - {"id"})
    for key in keys:
        whens = [(exp.not_(exp.Is(this=named.copy(), expression=exp.Null())),
                  col(f"{prefix}_{key}") if f"{prefix}_{key}" in columns else exp.Null())
                 for named, prefix in names]
        value = exp.Case()
        for condition, result in whens:
            value = value.when(condition, result)
        traits[f"account.{key}"] = value
    return account_id, traits


def event_table(event: str) -> str:
    """The table a loader writes track event `event` to: `Order Completed` → `order_completed`."""
    return re.sub(r"[^a-z0-9]+", "_", event.lower()).strip("_")


def _is_loader(column: str) -> bool:
    return column in LOADER or column.startswith("context_")


@dataclass(frozen=True)
class SegmentSchema:
    """The tables of one loader schema: name → its columns (as the warehouse types them)."""

    schema: str
    tables: Mapping[str, Mapping[str, str]]

    def name(self, table: str) -> str:
        return f"{self.schema}.{table}" if self.schema else table


def _paths(condition: cond.Condition | None) -> list[str]:
    if condition is None:
        return []
    if isinstance(condition, cond.Predicate):
        return [condition.path]
    if isinstance(condition, cond.Not):
        return _paths(condition.item)
    return [p for item in condition.items for p in _paths(item)]


def read_properties(models: Sequence[Model]) -> tuple[dict[str, set[str]], set[str]]:
    """The properties the models read, per track event name and for pages (as the loaders
    name the columns: `properties.email_id` → `email_id`)."""
    per_event: dict[str, set[str]] = {}
    pages: set[str] = set()

    def note(matcher: Matcher, paths: list[str]) -> None:
        names = {p.removeprefix("properties.") for p in paths if p.startswith("properties.")}
        if matcher.pages:
            pages.update(names)
        for event in matcher.events:
            per_event.setdefault(event, set()).update(names)

    for model in models:
        compiled = compile_model(model)
        for rule in compiled.rules:
            note(rule.matcher, [*_paths(rule.matcher.where),
                                *([rule.distinct] if rule.distinct else [])])
        for stage in compiled.stages:
            if stage.matcher is not None:
                bought = [VALUE_PATHS[0]] if stage.rank == CUSTOMER_RANK else []
                note(stage.matcher, [*_paths(stage.matcher.where), *bought])
    return {e: p for e, p in per_event.items() if p}, pages


def declared_schema(schema: str, models: Sequence[Model], traits: Mapping[str, str],
                    kinds: Mapping[str, str]) -> SegmentSchema:
    """The loader tables the models need, without a database to ask: the fixed columns, the
    traits (`traits`: leads columns → type, `account.x` ones go to `groups`), and per event
    table the properties the models read (typed by `kinds`: events columns → type)."""
    base = {"id": "VARCHAR", "anonymous_id": "VARCHAR", "user_id": "VARCHAR",
            "timestamp": "TIMESTAMP WITH TIME ZONE"}
    per_event, page_properties = read_properties(models)
    tables: dict[str, dict[str, str]] = {
        "tracks": {**base, "event": "VARCHAR"},
        "pages": {**base, "path": "VARCHAR", **{p: kinds.get(p, "VARCHAR")
                                               for p in sorted(page_properties)}},
        "identifies": {**base, **{c: t for c, t in traits.items()
                                  if c != "lead_id" and not c.startswith("account.")}},
        "groups": {**base, "group_id": "VARCHAR",
                   **{c.removeprefix("account."): t for c, t in traits.items()
                      if c.startswith("account.")}},
        "aliases": {**base, "previous_id": "VARCHAR"},
    }
    for event, names in per_event.items():
        tables[event_table(event)] = {**base, "event": "VARCHAR",
                                      **{p: kinds.get(p, "VARCHAR") for p in sorted(names)}}
    return SegmentSchema(schema, tables)


def _value(columns: Mapping[str, str], name: str, kind: str) -> exp.Expr:
    typed = exp.DataType.build(kind)
    return exp.cast(col(name) if name in columns else exp.Null(), typed)


def messages_query(source: SegmentSchema, models: Sequence[Model]
                   ) -> tuple[exp.Query, dict[str, str]]:
    """One row per message of the loader tables (a UNION ALL, a branch per table), in the
    `messages` relation's columns (`engine.sql.stream`), and those columns' types."""
    missing = [t for t in TABLES if t not in source.tables]
    if missing:
        raise ValueError(f"{source.schema or 'the schema'}: no table {', '.join(missing)} "
                         "(the tables Segment's and RudderStack's loaders write)")
    per_event, _ = read_properties(models)
    own = {e: event_table(e) for e in per_event if event_table(e) in source.tables}
    branches: list[tuple[str, str, dict[str, str], exp.Expr | None]] = []
    # (table, message type, value columns: table column → message column, filter)

    def values(table: str, prefix: str) -> dict[str, str]:
        return {c: prefix + c for c in source.tables[table] if not _is_loader(c)}

    untracked = exp.not_(exp.In(this=col("event"), expressions=[text(e) for e in own])) \
        if own else None
    branches.append(("tracks", "track", {}, untracked))
    for event, table in sorted(own.items()):
        branches.append((table, "track", values(table, "properties."),
                         exp.EQ(this=col("event"), expression=text(event))))
    branches.append(("pages", "page", values("pages", "properties."), None))
    if "screens" in source.tables:
        branches.append(("screens", "screen", values("screens", "properties."), None))
    branches.append(("identifies", "identify", values("identifies", "traits."), None))
    branches.append(("groups", "group", values("groups", "account."), None))
    branches.append(("aliases", "alias", {}, None))
    types = dict(MESSAGE)
    for table, _, mapping, _ in branches:
        for column, name in mapping.items():
            kind = kind_of(source.tables[table][column])
            types[name] = "VARCHAR" if kind == "TIMESTAMP" else kind
    identifies = source.tables["identifies"]
    named_account, company_traits = company_account(identifies)
    for name in company_traits:
        column = f"{name.removeprefix('account.')}"
        kinds = {kind_of(identifies[f"{p}_{column}"]) for p in ACCOUNT_OBJECTS
                 if f"{p}_{column}" in identifies}
        kind = kinds.pop() if len(kinds) == 1 else "VARCHAR"
        types.setdefault(name, "VARCHAR" if kind == "TIMESTAMP" else kind)
    query: exp.Query | None = None
    for table, kind, mapping, where in branches:
        columns = source.tables[table]
        own_names = {name: column for column, name in mapping.items()}
        path = exp.RegexpReplace(this=_value(columns, "path", "VARCHAR"),
                                 expression=text("[?#].*$"), replacement=text(""))
        fixed = {"message_id": _value(columns, "id", "VARCHAR"), "type": text(kind),
                 "user_id": _value(columns, "user_id", "VARCHAR"),
                 "anonymous_id": _value(columns, "anonymous_id", "VARCHAR"),
                 "previous_id": _value(columns, "previous_id", "VARCHAR"),
                 "timestamp": _value(columns, "timestamp", "TIMESTAMPTZ"),
                 "event": _value(columns, "event", "VARCHAR") if kind == "track"
                 else _value(columns, "name", "VARCHAR") if kind == "screen"
                 else exp.cast(exp.Null(), exp.DataType.build("VARCHAR")),
                 "path": path if kind == "page"
                 else exp.cast(exp.Null(), exp.DataType.build("VARCHAR")),
                 "account_id": named_account.copy() if kind == "identify"
                 else _value(columns, "group_id", "VARCHAR")}
        selects = [alias(fixed[name], name) for name in MESSAGE]
        for name, kind_name in types.items():
            if name in MESSAGE:
                continue
            value = col(own_names[name]) if name in own_names else (
                company_traits[name].copy() if kind == "identify" and name in company_traits
                else exp.Null())
            selects.append(alias(exp.cast(value, exp.DataType.build(kind_name)), name))
        branch = exp.select(*selects).from_(exp.to_table(source.name(table)))
        if where is not None:
            branch = branch.where(where)
        query = branch if query is None else exp.union(query, branch, distinct=False)
    assert query is not None
    return query, types


# An as_of standing for "now" while the stream stage (which takes µs) is built; replaced by
# the dialect's current time afterwards.
_NOW = 4_102_444_800_000_123


def compile_segment_scores(models: Sequence[Model], source: SegmentSchema, *,
                           as_of_us: int | exp.Expr | None, dialect: str | Dialect = "duckdb",
                           create: str | None = None) -> exp.Expr:
    """One statement scoring every lead of the loader tables of `source` under `models`:
    the messages, the stream stage (identity resolution with its label rounds unrolled:
    alias chains up to 2^ROUNDS long), each model's plan. `as_of_us` None: the warehouse's
    current time; an expression: that value (dbt's macro)."""
    speaking = Dialect.get_or_raise(dialect)
    ctes, names, columns = stream_relations(models, source, as_of_us, speaking)
    return scores_statement(list(models), ctes, names.events, columns["events"],
                            names.leads, columns["leads"], as_of_us=as_of_us,
                            dialect=speaking, create=create)


def stream_relations(models: Sequence[Model], source: SegmentSchema,
                     as_of_us: int | exp.Expr | None, speaking: Dialect
                     ) -> tuple[list[tuple[str, exp.Expr]], Names, dict[str, dict[str, str]]]:
    """The CTEs making the stream's canonical relations from the loader tables of `source`
    (the messages, then the stream stage), their names and their columns (`events`,
    `leads`, `accounts`): what each model's plan, and the account plan, read."""
    messages, types = messages_query(source, models)
    names = Names(messages="messages")
    given = as_of_us if isinstance(as_of_us, int) else None
    stage = compile_stream(types, _NOW if given is None else given, names=names)
    ctes: list[tuple[str, exp.Expr]] = [
        ("messages", messages), (names.msg, stage.msg), (names.edges, stage.edges),
        (names.labels, stage.labels), (names.ids, stage.ids), (names.events, stage.events),
        (names.accounts, stage.accounts), (names.leads, stage.leads)]
    for _, query in ctes[1:]:
        # The stage is written with Spark's UNIX_MICROS: this dialect's spelling of it.
        for node in reversed(list(query.find_all(exp.UnixMicros, bfs=False))):
            node.replace(speaking.epoch_us(node.this.copy()))
    if given is None:
        now = speaking.now_us() if as_of_us is None else as_of_us
        assert isinstance(now, exp.Expr)
        for _, query in ctes:
            for literal in list(query.find_all(exp.Literal)):
                if literal.is_number and literal.this == str(_NOW):
                    literal.replace(now.copy())
    return ctes, names, {k: dict(v) for k, v in stage.columns.items()}
