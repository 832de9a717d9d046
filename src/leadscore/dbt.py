"""A dbt package of the models (`leadscore dbt`): a dbt model per scoresheet (the statement
`leadscore compile` writes, over the package's sources), the sources for the events and leads
tables, and each scoresheet's worked examples (`tests:`) as dbt data tests — the example's
events and traits inline, scored by the same compiled plan, a row returned for each
expectation that fails.

    dbt_project.yml           var `leadscore_as_of` (ISO 8601; unset: the warehouse's now)
    macros/leadscore_as_of.sql
    models/sources.yml        source `leadscore`: tables `events`, `leads` (with a loader
                              schema, `segment=`: its tracks, pages, identifies, groups,
                              aliases and the per-event tables the models read)
    models/schema.yml         per scores model: lead_id unique and not null; per account
                              scores model: account_id unique and not null
    models/scores_<model>.sql
    models/account_scores_<model>.sql   a model with an `account:` section: its account
                              scores (`engine.sql.warehouse_accounts`) over the events,
                              leads and `accounts` tables (`segment=`: the stream's accounts)
    tests/<model>__<example>.sql

A worked example's `interests` expectation is left out (the compiled statement has no
interests); every other expectation is a condition on the scores row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml
from sqlglot import exp

from leadscore.checks import TEST_LEAD, event_of, events_table, leads_table
from leadscore.engine.sql.build import col, number, text
from leadscore.engine.sql.dialects import Dialect
from leadscore.engine.sql.segment_tables import SegmentSchema, compile_segment_scores
from leadscore.engine.sql.warehouse import TIMES, Source, compile_scores, render
from leadscore.engine.sql.warehouse_accounts import (
    compile_account_scores,
    compile_segment_account_scores,
)
from leadscore.events import Event, Lead
from leadscore.model.accounts import compile_account
from leadscore.model.schema import Model, ModelTest
from leadscore.timeutil import parse_timestamp

PROJECT = "leadscore_scores"
SOURCE = "leadscore"
AS_OF_VAR = "leadscore_as_of"
_EVENTS, _LEADS, _AS_OF = "__leadscore_events__", "__leadscore_leads__", "__leadscore_as_of__"
_ACCOUNTS = "__leadscore_accounts__"
_AS_OF_TEXT = "__leadscore_as_of_text__"
_LOADER = "__leadscore_loader_{}__"
EXACT = 1e-9


def slug(name: str) -> str:
    """A name dbt accepts for a model or test file: lower case, letters, digits, `_`."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "model"


def _sourced(statement: exp.Expr, dialect: Dialect) -> str:
    """The statement's SQL with the placeholder tables as the package's sources and the
    placeholder as_of as the macro `leadscore_as_of()`."""
    sql = render(statement, dialect).rstrip().rstrip(";")
    for placeholder, name in ((_EVENTS, "events"), (_LEADS, "leads"), (_ACCOUNTS, "accounts")):
        sql = sql.replace(placeholder, "{{ source('" + SOURCE + "', '" + name + "') }}")
    return sql.replace(_AS_OF, "({{ leadscore_as_of() }})")


def model_sql(model: Model, dialect: Dialect, events_columns: dict[str, str],
              leads_columns: dict[str, str] | None) -> str:
    """The dbt model of one scoresheet: the compiled statement over the package's sources,
    as of the macro `leadscore_as_of()`."""
    statement = compile_scores(
        [model], Source(_EVENTS, events_columns),
        Source(_LEADS, leads_columns) if leads_columns is not None else None,
        as_of_us=exp.column(_AS_OF), dialect=dialect)
    sql = _sourced(statement, dialect)
    return f"-- {model.name}: written by `leadscore dbt`; edit the model, not this file.\n" \
           f"{{{{ config(materialized='table') }}}}\n\n{sql}\n"


def account_model_sql(model: Model, dialect: Dialect, events_columns: dict[str, str],
                      leads_columns: dict[str, str] | None,
                      accounts_columns: dict[str, str] | None) -> str:
    """The dbt model of one scoresheet's account scores over the package's sources (the
    leads' scores computed inline by the same plan), as of `leadscore_as_of()`."""
    statement = compile_account_scores(
        [model], Source(_EVENTS, events_columns),
        Source(_LEADS, leads_columns) if leads_columns is not None else None,
        Source(_ACCOUNTS, accounts_columns) if accounts_columns is not None else None,
        as_of_us=exp.column(_AS_OF), dialect=dialect)
    sql = _sourced(statement, dialect)
    return f"-- {model.name}: its accounts, written by `leadscore dbt`; edit the model, not " \
           f"this file.\n{{{{ config(materialized='table') }}}}\n\n{sql}\n"


class _LoaderSources(SegmentSchema):
    """A loader schema whose tables are named by placeholders, made dbt sources afterwards."""

    def name(self, table: str) -> str:
        return _LOADER.format(table)


def segment_model_sql(model: Model, dialect: Dialect, segment: SegmentSchema,
                      accounts: bool = False) -> str:
    """The dbt model of one scoresheet over the loader tables of `segment` (the package's
    sources), as of the macro `leadscore_as_of()`; `accounts`: of its account scores (the
    accounts the stream names)."""
    compile_statement = compile_segment_account_scores if accounts else compile_segment_scores
    statement = compile_statement(
        [model], _LoaderSources(segment.schema, segment.tables), as_of_us=exp.column(_AS_OF),
        dialect=dialect)
    sql = render(statement, dialect).rstrip().rstrip(";")
    for table in segment.tables:
        sql = sql.replace(_LOADER.format(table),
                          "{{ source('" + SOURCE + "', '" + table + "') }}")
    sql = sql.replace(_AS_OF, "({{ leadscore_as_of() }})")
    what = "its accounts, " if accounts else ""
    return f"-- {model.name}: {what}written by `leadscore dbt --layout segment`; edit the " \
           f"model, not this file.\n{{{{ config(materialized='table') }}}}\n\n{sql}\n"


def read_tables(sql: str, segment: SegmentSchema) -> list[str]:
    """The loader tables a model's SQL reads (its sources)."""
    return [t for t in segment.tables if "'" + t + "') }}" in sql]


def as_of_macro(dialect: Dialect) -> str:
    """The macro giving the µs `as_of` the models score at: the var, else the current time."""
    given = dialect.epoch_us(exp.cast(text(_AS_OF_TEXT), exp.DataType.build("TIMESTAMPTZ")))
    given_sql = given.sql(dialect=dialect.NAME).replace(
        f"'{_AS_OF_TEXT}'", "'{{ var(\"" + AS_OF_VAR + "\") }}'")
    now_sql = dialect.now_us().sql(dialect=dialect.NAME)
    return ("{% macro leadscore_as_of() -%}\n"
            f"{{%- if var('{AS_OF_VAR}', none) is not none -%}}\n{given_sql}\n"
            f"{{%- else -%}}\n{now_sql}\n{{%- endif -%}}\n{{%- endmacro %}}\n")


# ------------------------------------------------------------------- worked examples

def _sql_type(kind: pa.DataType) -> str:
    if pa.types.is_boolean(kind):
        return "BOOLEAN"
    if pa.types.is_integer(kind):
        return "BIGINT"
    if pa.types.is_floating(kind):
        return "DOUBLE"
    if pa.types.is_timestamp(kind):
        return "TIMESTAMPTZ"
    return "VARCHAR"


def _literal(value: Any, kind: str) -> exp.Expr:
    if value is None:
        return exp.cast(exp.Null(), exp.DataType.build(kind))
    if kind == "TIMESTAMPTZ":
        stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return exp.cast(text(stamp.isoformat()), exp.DataType.build(kind))
    if kind == "BOOLEAN":
        return exp.Boolean(this=bool(value))
    if kind in ("BIGINT", "DOUBLE"):
        return exp.cast(number(value), exp.DataType.build(kind))
    return exp.cast(text(str(value)), exp.DataType.build(kind))


def inline_table(table: pa.Table) -> tuple[exp.Query, dict[str, str]]:
    """A table's rows as a query of literals (UNION ALL; no rows: `WHERE 1 = 0`), and its
    columns' types."""
    types = {f.name: _sql_type(f.type) for f in table.schema}
    rows = table.to_pylist() or [dict.fromkeys(types)]
    selects = [exp.select(*(exp.alias_(_literal(row[name], kind), name, quoted=True)
                            for name, kind in types.items())) for row in rows]
    query: exp.Query = selects[0]
    for select in selects[1:]:
        query = exp.union(query, select, distinct=False)
    if not table.num_rows:
        query = selects[0].where(exp.EQ(this=exp.Literal.number(1),
                                        expression=exp.Literal.number(0)))
    return query, types


def _expectation(column: str, expected: Any, dialect: Dialect) -> exp.Expr | None:
    """SQL: the scores row meets `expect.<column>` (None: not checked in SQL)."""
    value = col(column)
    if column == "interests":
        return None
    if isinstance(expected, dict) and "approx" in expected:
        within = float(expected.get("within", EXACT))
        return exp.LTE(this=exp.Abs(this=exp.Sub(this=value, expression=number(
            float(expected["approx"])))), expression=number(within))
    if expected is None:
        return exp.Is(this=value, expression=exp.Null())
    if column in TIMES and isinstance(expected, str | int):
        return exp.EQ(this=value, expression=dialect.from_us(
            exp.Literal.number(parse_timestamp(expected))))
    if isinstance(expected, bool):
        return exp.EQ(this=value, expression=exp.Boolean(this=expected))
    if isinstance(expected, int | float):
        tolerance = EXACT * max(1.0, abs(float(expected)))
        return exp.LTE(this=exp.Abs(this=exp.Sub(this=value, expression=number(expected))),
                       expression=number(tolerance))
    return exp.EQ(this=value, expression=text(str(expected)))


def example_sql(model: Model, test: ModelTest, dialect: Dialect, events: list[Event],
                lead: Lead) -> str:
    """A dbt data test: the example scored by the compiled plan; a row if it fails."""
    audience_free = model.model_copy(update={"applies_to": None})
    events_query, events_types = inline_table(events_table(events))
    leads_query, leads_types = inline_table(leads_table([lead]))
    statement = compile_scores([audience_free], Source("example_events", events_types),
                               Source("example_leads", leads_types),
                               as_of_us=parse_timestamp(test.as_of), dialect=dialect)
    assert isinstance(statement, exp.Select)
    ctes = statement.args["with_"].expressions
    ctes[0:0] = [exp.CTE(this=events_query, alias=exp.TableAlias(
                     this=exp.to_identifier("example_events"))),
                 exp.CTE(this=leads_query, alias=exp.TableAlias(
                     this=exp.to_identifier("example_leads")))]
    checks = [c for c in (_expectation(k, v, dialect) for k, v in test.expect.items())
              if c is not None]
    ok = exp.and_(*(exp.func("COALESCE", c, exp.false()) for c in checks)) if checks \
        else exp.true()
    failing = exp.select(exp.Star()).from_(statement.subquery("scored")).where(exp.not_(ok))
    sql = dialect.finish(failing).sql(dialect=dialect.NAME, pretty=True)
    skipped = " (`interests` is not compiled)" if "interests" in test.expect else ""
    return (f"-- {model.name}: worked example {test.name!r}{skipped}; a row if it fails.\n"
            f"{sql}\n")


# ----------------------------------------------------------------------------- package

def _source(events_table_name: str, leads_table_name: str | None,
            accounts_table_name: str | None = None) -> dict[str, Any]:
    """The sources.yml: source `leadscore` with tables `events`, `leads` and `accounts`
    (one schema)."""
    def split(name: str) -> tuple[str | None, str]:
        schema, _, identifier = name.rpartition(".")
        return schema or None, identifier

    schema, events_identifier = split(events_table_name)
    tables = [{"name": "events", "identifier": events_identifier,
               "description": "Events: lead_id, timestamp, type, event, path, a column per "
                              "property."}]
    if leads_table_name is not None:
        leads_schema, leads_identifier = split(leads_table_name)
        if leads_schema != schema:
            raise ValueError(f"--leads-table {leads_table_name}: the events and leads tables "
                             "must be in one schema for the package's source")
        tables.append({"name": "leads", "identifier": leads_identifier,
                       "description": "Leads: lead_id, a column per trait."})
    if accounts_table_name is not None:
        accounts_schema, accounts_identifier = split(accounts_table_name)
        if accounts_schema != schema:
            raise ValueError(f"--accounts-table {accounts_table_name}: the events and accounts "
                             "tables must be in one schema for the package's source")
        tables.append({"name": "accounts", "identifier": accounts_identifier,
                       "description": "Accounts: account_id, a column per trait (domain: "
                                      "leads link by their e-mail's domain)."})
    return {"version": 2, "sources": [{
        "name": SOURCE, "schema": schema or "{{ target.schema }}", "tables": tables}]}


def _loader_source(segment: SegmentSchema, tables: Sequence[str]) -> dict[str, Any]:
    """The sources.yml over a loader schema: source `leadscore`, a table per one read."""
    return {"version": 2, "sources": [{
        "name": SOURCE, "schema": segment.schema or "{{ target.schema }}",
        "tables": [{"name": t, "description": "Written by Segment's or RudderStack's "
                    "warehouse loader."} for t in tables]}]}


def write_package(models: Sequence[Model], out_dir: Path, *, dialect: str,
                  events_table: str | None, leads_table: str | None,
                  events_columns: dict[str, str] | None, leads_columns: dict[str, str] | None,
                  segment: SegmentSchema | None = None, accounts_table: str | None = None,
                  accounts_columns: dict[str, str] | None = None) -> list[Path]:
    """Write the dbt package of `models` into `out_dir` (over the events and leads tables
    and, for the account scores of the models with an `account:` section, the accounts
    table (None: the accounts the leads' account_id names); or `segment`: the loader tables
    of that schema); returns the files written."""
    speaking = Dialect.get_or_raise(dialect)
    files: dict[str, str] = {}
    files["dbt_project.yml"] = yaml.safe_dump({
        "name": PROJECT, "version": "1.0.0", "config-version": 2, "profile": "leadscore",
        "model-paths": ["models"], "test-paths": ["tests"], "macro-paths": ["macros"],
        "vars": {AS_OF_VAR: None},
        "models": {PROJECT: {"+materialized": "table"}}}, sort_keys=False)
    files["macros/leadscore_as_of.sql"] = as_of_macro(speaking)
    if segment is None:
        assert events_table is not None and events_columns is not None
        with_accounts = accounts_table if any(compile_account(m) for m in models) else None
        files["models/sources.yml"] = yaml.safe_dump(
            _source(events_table, leads_table, with_accounts), sort_keys=False)
    read: list[str] = []
    schema_models = []
    for model in models:
        name = f"scores_{slug(model.name)}"
        if segment is not None:
            sql = segment_model_sql(model, speaking, segment)
            read += [t for t in read_tables(sql, segment) if t not in read]
        else:
            assert events_columns is not None
            sql = model_sql(model, speaking, events_columns,
                            leads_columns if leads_table else None)
        files[f"models/{name}.sql"] = sql
        schema_models.append({
            "name": name, "description": f"Scores of every lead under {model.name} "
            "(written by `leadscore dbt`).",
            "columns": [{"name": "lead_id", "data_tests": ["unique", "not_null"]}]})
        if compile_account(model) is not None:
            name = f"account_scores_{slug(model.name)}"
            if segment is not None:
                sql = segment_model_sql(model, speaking, segment, accounts=True)
                read += [t for t in read_tables(sql, segment) if t not in read]
            else:
                assert events_columns is not None
                sql = account_model_sql(model, speaking, events_columns,
                                        leads_columns if leads_table else None,
                                        accounts_columns if accounts_table else None)
            files[f"models/{name}.sql"] = sql
            schema_models.append({
                "name": name, "description": f"Scores of every account under {model.name} "
                "(written by `leadscore dbt`).",
                "columns": [{"name": "account_id", "data_tests": ["unique", "not_null"]}]})
        for test in model.tests:
            events = [event_of(spec, i) for i, spec in enumerate(test.events)]
            lead = Lead(TEST_LEAD, dict(test.traits), dict(test.account))
            files[f"tests/{slug(model.name)}__{slug(test.name)}.sql"] = example_sql(
                model, test, speaking, events, lead)
    if segment is not None:
        files["models/sources.yml"] = yaml.safe_dump(_loader_source(segment, read),
                                                     sort_keys=False)
    files["models/schema.yml"] = yaml.safe_dump({"version": 2, "models": schema_models},
                                                sort_keys=False)
    written = []
    for relative, content in files.items():
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written
