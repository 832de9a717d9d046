"""The scoring plan over a warehouse's own tables, as one statement (`leadscore compile`,
`leadscore score --engine postgres`, the dbt package).

The tables have the layout of the Parquet/CSV input (`io.readers`): events `lead_id,
timestamp, type, event, path` plus a column per property (`x` is `properties.x`; a column
named `context.x` or `properties.x` keeps its name), leads `lead_id` plus a column per trait
(`x` is `traits.x`; `account.x` keeps its name). Two source stages turn them into the
canonical relations the plan reads — `source_events` (µs timestamps, the query string cut
from `path`, rows without a lead, a time or a known type left out) and `source_leads` — and
each model's plan follows under its own CTE names (`m0_ev`, …, `m0_final`); the statement is
their UNION ALL with the timestamps as timestamps, sorted by model and lead_id: the scores'
columns (`scores.OUTPUT_COLUMNS`; interests are not part of it).

The columns and their types come from the database where there is one (`--db`), else from the
models (`declared_columns`: each path a model reads, typed by how it is compared)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from sqlglot import exp

from leadscore.engine.sql.build import alias, bigint, case, col, table, text
from leadscore.engine.sql.dialects import Dialect
from leadscore.engine.sql.plan import PlanOptions, compile_plan
from leadscore.events import EVENT_TYPES
from leadscore.model import conditions as cond
from leadscore.model.accounts import compile_account
from leadscore.model.compiled import CUSTOMER_RANK, CompiledModel, compile_model
from leadscore.model.purchases import VALUE_PATHS
from leadscore.model.schema import Model
from leadscore.scores import OUTPUT_COLUMNS

EVENTS, LEADS = "source_events", "source_leads"
KEYS = ("lead_id", "timestamp", "type", "event", "path")
TIMES = ("customer_since", "as_of")      # µs in the plan, timestamps in the scores table
# The canonical SQL type of each kind of warehouse column (`kind_of`).
VARCHAR, BIGINT, DOUBLE, BOOLEAN, TIMESTAMP = "VARCHAR", "BIGINT", "DOUBLE", "BOOLEAN", \
    "TIMESTAMP"


@dataclass(frozen=True)
class Source:
    """A warehouse table: its name as the warehouse spells it (`schema.table`) and its
    columns with their types as the warehouse names them."""

    name: str
    columns: Mapping[str, str]


def kind_of(native: str) -> str:
    """The canonical type (VARCHAR, BIGINT, DOUBLE, BOOLEAN, TIMESTAMP) of a warehouse type
    name (PostgreSQL's `double precision`, Snowflake's `NUMBER(38,0)`, DuckDB's `BIGINT`, …);
    anything else is read as text."""
    name = native.strip().upper()
    base = name.split("(")[0].strip()
    if base.startswith("TIMESTAMP") or base in ("DATE", "DATETIME", "TIMESTAMPTZ"):
        return TIMESTAMP
    if base in ("BOOLEAN", "BOOL"):
        return BOOLEAN
    if base in ("NUMBER", "NUMERIC", "DECIMAL") and name.replace(" ", "").endswith(",0)"):
        return BIGINT
    if "INT" in base or base in ("LONG", "SHORT", "BYTE"):
        return BIGINT
    if base in ("DOUBLE", "DOUBLE PRECISION", "FLOAT", "FLOAT4", "FLOAT8", "FLOAT64", "REAL",
                "NUMERIC", "DECIMAL", "NUMBER", "BIGNUMERIC"):
        return DOUBLE
    return VARCHAR


def event_path(column: str) -> str:
    """The canonical path of an events table's property column."""
    return column if column.startswith(("context.", "properties.")) else f"properties.{column}"


def lead_path(column: str) -> str:
    """The canonical path of a leads table's trait column."""
    return column if column.startswith(("traits.", "account.")) else f"traits.{column}"


def _typed(value: exp.Expr, kind: str) -> exp.Expr:
    if kind == VARCHAR:
        return exp.cast(value, exp.DataType.Type.VARCHAR)
    return exp.cast(value, exp.DataType.build(kind))


def _instant(value: exp.Expr, native: str, dialect: Dialect) -> exp.Expr:
    """µs since the epoch of the events' `timestamp`: a timestamp (without a zone: UTC),
    epoch seconds / ms / µs by magnitude (as `io.readers` reads them) or ISO-8601 text."""
    kind = kind_of(native)
    if kind in (BIGINT, DOUBLE):
        number = exp.cast(value, exp.DataType.Type.DOUBLE)
        magnitude = exp.Abs(this=number.copy())
        return bigint(exp.Round(this=case([
            (exp.LT(this=magnitude, expression=exp.Literal.number(10**11)),
             exp.Mul(this=number.copy(), expression=exp.Literal.number(10**6))),
            (exp.LT(this=magnitude.copy(), expression=exp.Literal.number(10**14)),
             exp.Mul(this=number.copy(), expression=exp.Literal.number(1000)))],
            number.copy())))
    if kind != TIMESTAMP:
        value = exp.cast(value, exp.DataType.build("TIMESTAMPTZ"))
    return dialect.epoch_us(value)


def source_events(events: Source, dialect: Dialect) -> tuple[exp.Select, dict[str, str]]:
    """The canonical events from a warehouse events table, and their columns' types."""
    columns = dict(events.columns)
    for key in ("lead_id", "timestamp"):
        if key not in columns:
            raise ValueError(f"{events.name}: no column {key!r}; columns found: "
                             f"{', '.join(columns) or '(none)'}")
    lead = exp.cast(col("lead_id"), exp.DataType.Type.VARCHAR)
    raw_path = exp.cast(col("path"), exp.DataType.Type.VARCHAR) if "path" in columns \
        else exp.cast(exp.Null(), exp.DataType.Type.VARCHAR)
    given = exp.Nullif(this=exp.cast(col("type"), exp.DataType.Type.VARCHAR),
                       expression=text("")) if "type" in columns else None
    inferred = case([(exp.NEQ(this=raw_path.copy(), expression=text("")), text("page"))],
                    text("track"))
    kind = inferred if given is None else exp.func("COALESCE", given, inferred)
    event = exp.cast(col("event"), exp.DataType.Type.VARCHAR) if "event" in columns \
        else exp.cast(exp.Null(), exp.DataType.Type.VARCHAR)
    path = exp.RegexpReplace(this=raw_path.copy(), expression=text("[?#].*$"),
                             replacement=text(""))
    ts = _instant(col("timestamp"), columns["timestamp"], dialect)
    selects: list[exp.Expr] = [alias(lead, "lead_id"), alias(ts, "ts"), alias(kind, "type"),
                               alias(event, "event"), alias(path, "path")]
    types = {"lead_id": VARCHAR, "ts": BIGINT, "type": VARCHAR, "event": VARCHAR,
             "path": VARCHAR}
    for name, native in columns.items():
        if name in KEYS:
            continue
        kind_name = kind_of(native)
        kind_name = VARCHAR if kind_name == TIMESTAMP else kind_name
        canonical = event_path(name)
        selects.append(alias(_typed(col(name), kind_name), canonical))
        types[canonical] = kind_name
    known = exp.In(this=kind.copy(), expressions=[text(t) for t in EVENT_TYPES])
    good = exp.and_(exp.not_(exp.Is(this=lead.copy(), expression=exp.Null())),
                    exp.NEQ(this=lead.copy(), expression=text("")),
                    exp.not_(exp.Is(this=ts.copy(), expression=exp.Null())), known)
    return exp.select(*selects).from_(exp.to_table(events.name)).where(good), types


def source_leads(leads: Source) -> tuple[exp.Select, dict[str, str]]:
    """The canonical leads from a warehouse leads table (one row per lead_id), and their
    columns' types."""
    if "lead_id" not in leads.columns:
        raise ValueError(f"{leads.name}: no column 'lead_id'; columns found: "
                         f"{', '.join(leads.columns) or '(none)'}")
    lead = exp.cast(col("lead_id"), exp.DataType.Type.VARCHAR)
    selects: list[exp.Expr] = [alias(lead, "lead_id")]
    types = {"lead_id": VARCHAR}
    for name, native in leads.columns.items():
        if name == "lead_id":
            continue
        kind_name = kind_of(native)
        kind_name = VARCHAR if kind_name == TIMESTAMP else kind_name
        selects.append(alias(_typed(col(name), kind_name), lead_path(name)))
        types[lead_path(name)] = kind_name
    good = exp.and_(exp.not_(exp.Is(this=lead.copy(), expression=exp.Null())),
                    exp.NEQ(this=lead.copy(), expression=text("")))
    return exp.select(*selects).from_(exp.to_table(leads.name)).where(good), types


def source_accounts(accounts: Source) -> tuple[exp.Select, dict[str, str]]:
    """The canonical accounts from a warehouse accounts table (`account_id` and a column per
    trait, `x` or `account.x` / `traits.x` for the trait `account.x`, as
    `engine.batch.inputs.read_accounts` reads a file), and their columns' types."""
    if "account_id" not in accounts.columns:
        raise ValueError(f"{accounts.name}: no column 'account_id'; columns found: "
                         f"{', '.join(accounts.columns) or '(none)'}")
    account = exp.cast(col("account_id"), exp.DataType.Type.VARCHAR)
    selects: list[exp.Expr] = [alias(account, "account_id")]
    types = {"account_id": VARCHAR}
    for name, native in accounts.columns.items():
        if name == "account_id":
            continue
        kind_name = kind_of(native)
        kind_name = VARCHAR if kind_name == TIMESTAMP else kind_name
        trait = "account." + name.removeprefix("account.").removeprefix("traits.")
        selects.append(alias(_typed(col(name), kind_name), trait))
        types[trait] = kind_name
    good = exp.not_(exp.Is(this=account.copy(), expression=exp.Null()))
    return exp.select(*selects).from_(exp.to_table(accounts.name)).where(good), types


def compile_scores(models: Model | Sequence[Model], events: Source, leads: Source | None,
                   *, as_of_us: int | exp.Expr | None, dialect: str | Dialect = "duckdb",
                   create: str | None = None) -> exp.Expr:
    """One statement scoring every lead under every model over the warehouse tables `events`
    and `leads` (None: no leads table), as of `as_of_us` (µs; None: the warehouse's current
    time when the statement runs; an expression: that value); `create`: wrapped as
    `CREATE TABLE create AS …`."""
    speaking = Dialect.get_or_raise(dialect)
    events_query, events_types = source_events(events, speaking)
    ctes: list[tuple[str, exp.Expr]] = [(EVENTS, events_query)]
    leads_types = None
    if leads is not None:
        leads_query, leads_types = source_leads(leads)
        ctes.append((LEADS, leads_query))
    return scores_statement(models, ctes, EVENTS, events_types, LEADS, leads_types,
                            as_of_us=as_of_us, dialect=speaking, create=create)


def scores_statement(models: Model | Sequence[Model], ctes: list[tuple[str, exp.Expr]],
                     events: str, events_types: Mapping[str, str], leads: str,
                     leads_types: Mapping[str, str] | None, *,
                     as_of_us: int | exp.Expr | None, dialect: Dialect,
                     create: str | None = None) -> exp.Expr:
    """The statement: `ctes` (which make the canonical relations `events` and `leads`, the
    latter absent with `leads_types` None), each model's plan over them, their union."""
    model_list = [models] if isinstance(models, Model) else list(models)
    if not model_list:
        raise ValueError("no model to compile")
    when: int | exp.Expr = dialect.now_us() if as_of_us is None else as_of_us
    plans, named = model_plans(model_list, events, events_types, leads, leads_types, when,
                               dialect)
    ctes = [*ctes, *plans]
    finals = list(named.values())
    union: exp.Query = exp.select(exp.Star()).from_(table(finals[0]))
    for name in finals[1:]:
        union = exp.union(union, exp.select(exp.Star()).from_(table(name)), distinct=False)
    ctes.append(("scores", union))
    outputs = [alias(dialect.from_us(col(c)), c) if c in TIMES else col(c)
               for c in OUTPUT_COLUMNS]
    query = with_ctes(exp.select(*outputs).from_(table("scores")), ctes)
    query = query.order_by(col("model"), col("lead_id"), copy=False)
    statement: exp.Expr = query
    if create is not None:
        statement = exp.Create(this=exp.to_table(create), kind="TABLE", expression=query)
    return dialect.finish(statement)


def model_plans(models: Sequence[Model], events: str, events_types: Mapping[str, str],
                leads: str, leads_types: Mapping[str, str] | None, when: int | exp.Expr,
                dialect: Dialect) -> tuple[list[tuple[str, exp.Expr]], dict[str, str]]:
    """Each model's plan over the canonical relations `events` / `leads` as CTEs (by model
    name: `m0_…`, `m1_…`), and the name of the CTE holding each model's scores (µs times)."""
    ctes: list[tuple[str, exp.Expr]] = []
    finals: dict[str, str] = {}
    for number, model in enumerate(sorted(models, key=lambda m: m.name)):
        plan = compile_plan(model, events_types, leads_types, when, options=PlanOptions(
            events_table=events, leads_table=leads, dialect=dialect.NAME, order=False))
        prefix = f"m{number}_"
        ctes += _renamed(plan, prefix)
        finals[model.name] = f"{prefix}final"
    return ctes, finals


def with_ctes(query: exp.Select, ctes: Sequence[tuple[str, exp.Expr]]) -> exp.Select:
    """`query` under a WITH of `ctes` (quoted names)."""
    for name, cte in ctes:
        query = query.with_(exp.to_identifier(name, quoted=True), as_=cte, copy=False)
    return query


def _renamed(plan: exp.Select, prefix: str) -> list[tuple[str, exp.Expr]]:
    """The plan's CTEs and its own SELECT (as `final`), every name prefixed: several models'
    plans side by side in one WITH."""
    plan = plan.copy()
    ctes = plan.args["with_"].expressions if plan.args.get("with_") else []
    names = {cte.alias for cte in ctes} | {"final"}
    for node in plan.find_all(exp.Table):
        if node.name in names and not node.args.get("db"):
            node.set("this", exp.to_identifier(prefix + node.name, quoted=True))
    plan.set("with_", None)
    return [*((prefix + cte.alias, cte.this) for cte in ctes), (prefix + "final", plan)]


def render(statement: exp.Expr, dialect: str | Dialect, *, pretty: bool = True) -> str:
    """The statement as SQL text in `dialect`, ending with a semicolon and a newline."""
    name = Dialect.get_or_raise(dialect).NAME
    return statement.sql(dialect=name, pretty=pretty) + ";\n"


# -------------------------------------------------------------------- declared columns

def _predicates(condition: cond.Condition | None) -> Iterator[cond.Predicate]:
    if condition is None:
        return
    if isinstance(condition, cond.Predicate):
        yield condition
    elif isinstance(condition, cond.Not):
        yield from _predicates(condition.item)
    else:
        for item in condition.items:
            yield from _predicates(item)


def _kind_of_predicate(predicate: cond.Predicate) -> str:
    values = predicate.value if isinstance(predicate.value, list | tuple) else [predicate.value]
    if predicate.op in ("glob", "regex", "contains", "domain_in", "exists"):
        return VARCHAR
    if values and all(isinstance(v, bool) for v in values):
        return BOOLEAN
    if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return DOUBLE
    return VARCHAR


def declared_columns(models: Sequence[Model]) -> tuple[dict[str, str], dict[str, str]]:
    """The events and leads tables' columns the models read (as the warehouse tables name
    them: `email_id` for `properties.email_id`, `age` for `traits.age`), each typed by how it
    is compared (numbers: DOUBLE, true/false: BOOLEAN, an `age_of` date: TIMESTAMP, else
    VARCHAR) — for `compile` without a
    database to ask. Program events' `points`/`stage` and a purchase's `total`/`value` are
    read only where the table has them: ask the database (`--db`) for those."""
    events: dict[str, set[str]] = {}
    leads: dict[str, set[str]] = {}

    def note(path: str, kind: str) -> None:
        if path.startswith(("properties.", "context.")):
            name = path.removeprefix("properties.") if path.startswith("properties.") else path
            events.setdefault(name, set()).add(kind)
        elif path.startswith(("traits.", "account.")):
            name = path.removeprefix("traits.") if path.startswith("traits.") else path
            leads.setdefault(name, set()).add(kind)

    for model in models:
        compiled: CompiledModel = compile_model(model)
        lead_conditions = [compiled.applies_to, *(f.when for f in compiled.fit),
                           *(band for f in compiled.fit if f.age_of is None
                             for band, _ in f.bands),
                           *(s.when for s in compiled.stages)]
        for fit in compiled.fit:
            if fit.age_of is not None:    # a date: the warehouse's own type for one
                note(fit.age_of, TIMESTAMP)
        event_conditions = [*(r.matcher.where for r in compiled.rules),
                            *(s.matcher.where for s in compiled.stages if s.matcher)]
        for condition in [*lead_conditions, *event_conditions]:
            for predicate in _predicates(condition):
                note(predicate.path, _kind_of_predicate(predicate))
        for rule in compiled.rules:
            if rule.distinct is not None:
                note(rule.distinct, VARCHAR)
        if any(s.matcher and s.rank == CUSTOMER_RANK for s in compiled.stages):
            note(VALUE_PATHS[0], DOUBLE)     # a purchase's value: `revenue`

    def one(kinds: set[str]) -> str:
        return kinds.pop() if len(kinds) == 1 else VARCHAR

    event_columns = {"lead_id": VARCHAR, "timestamp": TIMESTAMP, "type": VARCHAR,
                     "event": VARCHAR, "path": VARCHAR}
    event_columns.update({name: one(set(kinds)) for name, kinds in sorted(events.items())})
    lead_columns = {"lead_id": VARCHAR}
    lead_columns.update({name: one(set(kinds)) for name, kinds in sorted(leads.items())})
    return event_columns, lead_columns


def declared_account_columns(models: Sequence[Model]) -> tuple[dict[str, str], dict[str, str]]:
    """For the account scores without a database to ask: the leads table's columns the
    account plan reads beyond `declared_columns`' (`account_id`, `email`: the links; each
    roles attribute) and the accounts table's (`account_id`, `domain`, the traits the
    account fit rules read, typed as `declared_columns` types them)."""
    leads: dict[str, set[str]] = {"account_id": {VARCHAR}, "email": {VARCHAR}}
    accounts: dict[str, set[str]] = {"account_id": {VARCHAR}, "domain": {VARCHAR}}
    for model in models:
        account = compile_account(model)
        if account is None:
            continue
        for _, condition in account.roles:
            for predicate in _predicates(condition):
                leads.setdefault(predicate.path.removeprefix("traits."), set()).add(VARCHAR)
        for rule in account.fit:
            for given in [rule.when, *(band for band, _ in rule.bands)]:
                for predicate in _predicates(given):
                    name = predicate.path.removeprefix("account.")
                    accounts.setdefault(name, set()).add(_kind_of_predicate(predicate))
    return ({name: kinds.pop() if len(kinds) == 1 else VARCHAR for name, kinds in
             leads.items()},
            {name: kinds.pop() if len(kinds) == 1 else VARCHAR for name, kinds in
             accounts.items()})
