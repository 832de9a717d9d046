"""The account scores where the data is (#20 item 1): `leadscore compile --accounts-table
--accounts-out` (default layout: an accounts table; `--layout segment`: the stream's accounts),
`leadscore score --engine postgres --accounts`. Run on DuckDB, the real PostgreSQL and Spark,
the statement's rows equal `score_accounts` on the same data, every account and column.

Rendered only: Snowflake, BigQuery and Redshift — the account statement of the golden accounts
file and of the B2B example is checked in under `tests/fixtures/compiled/accounts-*.sql`,
compared byte for byte and parsed back by sqlglot in its dialect
(`LEADSCORE_UPDATE_PLANS=1 python -m pytest tests/warehouse/test_accounts.py` rewrites them).
The engine registry runs the account statement too (tests/engine/engines.py:
`compiled-duckdb`, `postgres`, `compiled-spark` get the golden accounts and the generic
account check on drawn worlds).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot
import yaml
from sqlglot import exp

from leadscore import load_model
from leadscore.engine.batch.accounts import score_accounts
from leadscore.engine.batch.inputs import table_columns
from leadscore.engine.batch.postgres import score_accounts_postgres
from leadscore.engine.sql.dialects import DIALECTS
from leadscore.engine.sql.segment_tables import declared_schema
from leadscore.engine.sql.warehouse import Source, declared_columns, render
from leadscore.engine.sql.warehouse_accounts import (
    compile_account_scores,
    compile_segment_account_scores,
)
from leadscore.io.databases import load_postgres
from leadscore.model.schema import Model
from leadscore.scores import ACCOUNT_COLUMNS
from leadscore.timeutil import parse_timestamp
from tests.conftest import postgres_url, require_postgres
from tests.engine.outputs import rows_of
from tests.engine.test_golden import load_case
from tests.engine.test_golden_accounts import GOLDEN, frames
from tests.warehouse.test_compile import (
    COMPILED,
    EXAMPLE_AS_OF,
    EXAMPLES,
    RENDERED_ONLY,
    assert_rows_equal,
    columns,
    example_tables,
    leadscore,
)
from tests.warehouse.test_postgres import plain
from tests.warehouse.test_segment_layout import (
    STREAM,
    loader_schema_in_postgres,
    loader_tables,
)

B2B = EXAMPLES[1]
# The example's companies as an accounts table: each company's e-mail domain (not the
# model's free-mail ones) and the firmographics its leads carry.
EXAMPLE_ACCOUNTS = """
    SELECT company AS account_id,
           min(CASE WHEN split_part(email, '@', 2) NOT IN ('mail.example', 'post.example',
               'inbox.example') THEN split_part(email, '@', 2) END) AS domain,
           min("account.industry") AS industry, min("account.employees") AS employees
    FROM analytics.leads WHERE company IS NOT NULL GROUP BY company"""


def example_accounts(con: duckdb.DuckDBPyConnection) -> None:
    """The example tables (`analytics.events`, `.leads`) and `analytics.accounts`; a lead
    whose address is at a mailbox provider names its company's account (`account_id`)."""
    example_tables(con)
    con.sql(f"CREATE OR REPLACE TABLE analytics.accounts AS {EXAMPLE_ACCOUNTS}")
    con.sql("CREATE OR REPLACE TABLE analytics.leads AS SELECT *, CASE WHEN "
            "split_part(email, '@', 2) IN ('mail.example', 'post.example') THEN company END "
            "AS account_id FROM analytics.leads")


def want_accounts(models: list[Model], events: Any, leads: Any, accounts: Any,
                  as_of: Any = EXAMPLE_AS_OF) -> dict[Any, Any]:
    """score_accounts' rows by (model, account_id), times as µs."""
    return rows_of(score_accounts(models, events, leads, accounts, as_of=as_of), "account_id")


def example_want(as_of: Any = EXAMPLE_AS_OF) -> dict[Any, Any]:
    """score_accounts on the example tables (`example_accounts`)."""
    con = duckdb.connect()
    example_accounts(con)
    events, leads, accounts = (con.sql(f"SELECT * FROM analytics.{t}").to_arrow_table()
                               for t in ("events", "leads", "accounts"))
    con.close()
    return want_accounts([load_model(p) for p in EXAMPLES], events, leads, accounts, as_of)


def assert_accounts(want: dict[Any, Any], got: dict[Any, Any]) -> None:
    """Every account and column equal (lists in order); and the world is not empty."""
    assert want and any(row["leads"] for row in want.values())
    assert_rows_equal(want, got)
    for row in got.values():
        assert list(row) == list(ACCOUNT_COLUMNS)


def _cases() -> list[tuple[str, list[Model], Source, Source | None, Source, int]]:
    """(name, models, events, leads, accounts, as_of): the golden accounts files and the
    B2B example with its accounts table, the columns as DuckDB reads the tables."""
    cases = []
    con = duckdb.connect()
    for path in GOLDEN:
        case = load_case(path)
        sources = {}
        for name, frame in zip(("events", "leads", "accounts"), frames(case), strict=True):
            con.register("__t", frame)
            con.sql(f'CREATE OR REPLACE TABLE "{path.stem}_{name}" AS SELECT * FROM "__t"')
            con.unregister("__t")
            sources[name] = Source(f"analytics.{name}",
                                   table_columns(con, f"{path.stem}_{name}"))
        cases.append((path.stem, [case["model"]], sources["events"], sources["leads"],
                      sources["accounts"], parse_timestamp(case["as_of"])))
    example_accounts(con)
    cases.append((B2B.stem, [load_model(B2B)], *(
        Source(f"analytics.{t}", columns(con, f"analytics.{t}"))
        for t in ("events", "leads", "accounts")), parse_timestamp(EXAMPLE_AS_OF)))
    con.close()
    return cases


CASES = _cases()


@pytest.mark.parametrize("dialect", RENDERED_ONLY)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_rendered_account_sql_matches_its_fixture_and_parses_back(case: Any,
                                                                  dialect: str) -> None:
    name, models, events, leads, accounts, as_of = case
    sql = render(compile_account_scores(models, events, leads, accounts, as_of_us=as_of,
                                        dialect=dialect), dialect)
    path = COMPILED / f"accounts-{name}.{dialect}.sql"
    if os.environ.get("LEADSCORE_UPDATE_PLANS") == "1":
        path.write_text(sql, encoding="utf-8")
    assert path.exists(), f"no fixture {path.name}: run with LEADSCORE_UPDATE_PLANS=1"
    assert sql == path.read_text(encoding="utf-8"), f"{path.name} changed: read the diff"
    statements = [s for s in sqlglot.parse(path.read_text(), read=dialect) if s is not None]
    assert len(statements) == 1 and isinstance(statements[0], exp.Select)
    assert [e.alias_or_name for e in statements[0].expressions] == list(ACCOUNT_COLUMNS)


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_every_dialect_gets_one_account_statement_with_create(dialect: str) -> None:
    """Both layouts, as CREATE TABLE … AS, parse back as one statement in every dialect."""
    _, models, events, leads, accounts, _ = CASES[-1]
    segment = declared_schema("segment", models, declared_columns(models)[1],
                              declared_columns(models)[0])
    for statement in (
            compile_account_scores(models, events, leads, accounts, as_of_us=None,
                                   dialect=dialect, create="analytics.account_scores"),
            compile_segment_account_scores(models, segment, as_of_us=None, dialect=dialect,
                                           create="analytics.account_scores")):
        [parsed] = sqlglot.parse(render(statement, dialect), read=dialect)
        assert isinstance(parsed, exp.Create)
        assert parsed.this.sql(dialect=dialect).replace('"', "").replace("`", "") == \
            "analytics.account_scores"


@pytest.mark.parametrize("ask_the_database", [False, True], ids=["declared", "from-db"])
def test_compile_cli_accounts_on_duckdb_equal_score_accounts(tmp_path: Path,
                                                             ask_the_database: bool) -> None:
    """`compile --accounts-table --accounts-out --create-accounts` (the columns the models
    read, or read from the DuckDB file), run there: score_accounts' rows; the leads'
    statement written beside it is unchanged."""
    db = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    example_accounts(con)
    con.close()
    out, accounts_out = tmp_path / "scores.sql", tmp_path / "accounts.sql"
    done = leadscore("compile", "-m", str(EXAMPLES[0]), "-m", str(EXAMPLES[1]), "--dialect",
                     "duckdb", "--events-table", "analytics.events", "--leads-table",
                     "analytics.leads", "--accounts-table", "analytics.accounts",
                     "--as-of", EXAMPLE_AS_OF, "--out", str(out), "--accounts-out",
                     str(accounts_out), "--create-accounts", "analytics.account_scores",
                     *(["--db", str(db)] if ask_the_database else []))
    assert str(accounts_out) in done.stdout
    con = duckdb.connect(str(db))
    con.sql(accounts_out.read_text())
    got = rows_of(con.sql("SELECT * FROM analytics.account_scores").to_arrow_table(),
                  "account_id")
    leads_sql = con.sql(out.read_text()).to_arrow_table()
    con.close()
    want = example_want()
    assert_accounts(want, got)
    assert {m for m, _ in got} == {"b2b-software"}       # the B2C model has no `account:`
    assert all(sum(row[f"leads_by_{kind}"] for row in got.values()) for kind in
               ("account_id", "domain"))                 # both kinds of link are there
    assert set(leads_sql.column("model").to_pylist()) == {"b2b-software", "b2c-art-supplies"}


def test_without_as_of_the_accounts_are_scored_as_of_the_warehouse_time() -> None:
    con = duckdb.connect()
    example_accounts(con)
    models = [load_model(B2B)]
    sql = render(compile_account_scores(
        models, Source("analytics.events", columns(con, "analytics.events")),
        Source("analytics.leads", columns(con, "analytics.leads")),
        Source("analytics.accounts", columns(con, "analytics.accounts")), as_of_us=None,
        dialect="duckdb"), "duckdb")
    before = datetime.now(UTC)
    result = con.sql(sql).to_arrow_table()
    after = datetime.now(UTC)
    con.close()
    [as_of] = set(result.column("as_of").to_pylist())
    assert before <= as_of <= after
    assert_accounts({k: v for k, v in example_want(as_of).items() if k[0] == B2B.stem},
                    rows_of(result, "account_id"))


def test_without_an_accounts_table_the_leads_account_id_names_the_accounts() -> None:
    """No `--accounts-table`: the accounts are those the leads' `account_id` names (no
    traits), and without a leads table the statement gives no account."""
    [case] = [load_case(p) for p in GOLDEN]
    events, leads, _ = frames(case)
    con = duckdb.connect()
    con.sql("SET TimeZone = 'UTC'")
    for name, frame in (("events", events), ("leads", leads)):
        con.register("__t", frame)
        con.sql(f'CREATE TABLE "{name}" AS SELECT * FROM "__t"')
        con.unregister("__t")
    as_of = parse_timestamp(case["as_of"])
    found = {}
    for leads_source in (Source("leads", table_columns(con, "leads")), None):
        sql = render(compile_account_scores(
            [case["model"]], Source("events", table_columns(con, "events")), leads_source,
            None, as_of_us=as_of, dialect="duckdb"), "duckdb")
        found[leads_source is None] = rows_of(con.sql(sql).to_arrow_table(), "account_id")
    con.close()
    want = rows_of(score_accounts(case["model"], events, leads, as_of=as_of), "account_id")
    assert set(want) == {("accounts", "acme")}
    assert_accounts(want, found[False])
    assert found[True] == rows_of(score_accounts(case["model"], events, None, as_of=as_of),
                                  "account_id") == {}


def test_compile_cli_accounts_layout_segment(tmp_path: Path) -> None:
    """`compile --layout segment --accounts-out`: the accounts the loader's groups and
    identifies name, with their traits; run there, score_accounts' rows on the messages."""
    db = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    loader_tables(con, STREAM, "segment")
    con.close()
    accounts_out = tmp_path / "accounts.sql"
    args = ["compile", *(a for m in EXAMPLES for a in ("-m", str(m))), "--dialect", "duckdb",
            "--layout", "segment", "--schema", "segment", "--db", str(db)]
    leadscore(*args, "--as-of", EXAMPLE_AS_OF, "--out", str(tmp_path / "scores.sql"),
              "--accounts-out", str(accounts_out))
    con = duckdb.connect(str(db), read_only=True)
    got = rows_of(con.sql(accounts_out.read_text()).to_arrow_table(), "account_id")
    con.close()
    models = [load_model(p) for p in EXAMPLES]
    assert_accounts(want_accounts(models, str(STREAM[0]), str(STREAM[1]), None), got)
    both = leadscore(*args, "--accounts-table", "segment.accounts", "--accounts-out",
                     str(accounts_out), check=False)
    assert both.returncode != 0 and "--accounts-table goes with --layout tables" in both.stderr


def test_compile_cli_account_errors(tmp_path: Path) -> None:
    base = ["compile", "-m", str(EXAMPLES[0]), "--dialect", "duckdb", "--events-table", "e",
            "--leads-table", "l"]
    alone = leadscore(*base, "--create-accounts", "a", check=False)
    assert alone.returncode != 0 and "go with --accounts-out" in alone.stderr
    b2c = leadscore(*base, "--accounts-out", str(tmp_path / "a.sql"), check=False)
    assert b2c.returncode != 0 and "no model has an `account:` section" in b2c.stderr
    assert not (tmp_path / "a.sql").exists()


def test_dbt_package_has_an_account_model_and_source_per_account_model(tmp_path: Path) -> None:
    """`leadscore dbt`: `account_scores_<model>` for the B2B model only, the `accounts`
    source in the events table's schema unless named (dbt builds it: tests/warehouse/
    test_dbt.py); with --layout segment an accounts table is refused."""
    out = tmp_path / "package"
    leadscore("dbt", "-m", str(EXAMPLES[0]), "-m", str(EXAMPLES[1]), "--dialect", "postgres",
              "--events-table", "crm.events", "--leads-table", "crm.leads", "--out", str(out))
    models = {p.name for p in (out / "models").glob("*.sql")}
    assert models == {"scores_b2c_art_supplies.sql", "scores_b2b_software.sql",
                      "account_scores_b2b_software.sql"}
    [source] = yaml.safe_load((out / "models" / "sources.yml").read_text())["sources"]
    assert source["schema"] == "crm"
    assert [(t["name"], t["identifier"]) for t in source["tables"]] == [
        ("events", "events"), ("leads", "leads"), ("accounts", "accounts")]
    sql = (out / "models" / "account_scores_b2b_software.sql").read_text()
    assert "{{ source('leadscore', 'accounts') }}" in sql and "leadscore_as_of()" in sql
    schema = yaml.safe_load((out / "models" / "schema.yml").read_text())["models"]
    assert {"name": "account_id", "data_tests": ["unique", "not_null"]} in \
        [c for m in schema if m["name"] == "account_scores_b2b_software" for c in m["columns"]]
    other = leadscore("dbt", "-m", str(EXAMPLES[1]), "--events-table", "crm.events",
                      "--accounts-table", "sales.companies", "--out", str(tmp_path / "o"),
                      check=False)
    assert other.returncode != 0 and "must be in one schema" in other.stderr
    segment = leadscore("dbt", "-m", str(EXAMPLES[1]), "--layout", "segment", "--schema", "s",
                        "--accounts-table", "s.accounts", "--out", str(tmp_path / "s"),
                        check=False)
    assert segment.returncode != 0
    assert "--accounts-table goes with --layout tables" in segment.stderr


# ------------------------------------------------------------------------------ PostgreSQL

@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh schema holding the example events, leads and accounts."""
    require_postgres()
    name = f"a_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url(), autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {name}")
    con = duckdb.connect()
    example_accounts(con)
    for table in ("events", "leads", "accounts"):
        load_postgres(postgres_url(), f"{name}.{table}",
                      con.sql(f"SELECT * FROM analytics.{table}").to_arrow_table())
    con.close()
    try:
        yield name
    finally:
        with psycopg.connect(postgres_url(), autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {name} CASCADE")


def account_rows(schema: str, table: str) -> dict[Any, Any]:
    """A table of account scores in PostgreSQL, by (model, account_id), times as µs."""
    with psycopg.connect(postgres_url()) as connection:
        cursor = connection.execute(f'SELECT * FROM {schema}."{table}"')
        names = [d.name for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return plain({(r["model"], r["account_id"]): r for r in rows})


@pytest.mark.postgres
def test_account_statement_in_postgres_equals_score_accounts(pg_schema: str) -> None:
    models = [load_model(p) for p in EXAMPLES]
    got = score_accounts_postgres(models, postgres_url(), f"{pg_schema}.events",
                                  f"{pg_schema}.leads", f"{pg_schema}.accounts",
                                  as_of=EXAMPLE_AS_OF)
    assert_accounts(example_want(), rows_of(got, "account_id"))


@pytest.mark.postgres
def test_account_statement_layout_segment_in_postgres_equals_score_accounts() -> None:
    models = [load_model(p) for p in EXAMPLES]
    with loader_schema_in_postgres(STREAM) as (schema, _):
        got = score_accounts_postgres(models, postgres_url(), None, segment=schema,
                                      as_of=EXAMPLE_AS_OF)
    assert_accounts(want_accounts(models, str(STREAM[0]), str(STREAM[1]), None),
                    rows_of(got, "account_id"))


@pytest.mark.postgres
def test_score_engine_postgres_accounts_into_a_table_and_a_file(pg_schema: str,
                                                                tmp_path: Path) -> None:
    """`score --engine postgres --accounts TABLE --account-traits TABLE`: the account scores
    into a table of the database (roles as JSONB, primary key account_id and model), replaced
    or upserted; `--accounts FILE` fetches them."""
    base = ["score", "--engine", "postgres", "--db", postgres_url(), "-m", str(EXAMPLES[0]),
            "-m", str(EXAMPLES[1]), "--events", f"{pg_schema}.events", "--leads",
            f"{pg_schema}.leads", "--account-traits", f"{pg_schema}.accounts"]
    done = leadscore(*base, "--as-of", EXAMPLE_AS_OF, "--out", f"{pg_schema}.scores",
                     "--accounts", f"{pg_schema}.account_scores")
    assert "account scores to table" in done.stdout
    want = example_want()
    assert_accounts(want, account_rows(pg_schema, "account_scores"))
    with psycopg.connect(postgres_url()) as connection:
        connection.execute(f"INSERT INTO {pg_schema}.account_scores (account_id, model, fit) "
                           "VALUES ('gone', 'b2b-software', 1)")
        [(key,)] = connection.execute(
            "SELECT string_agg(a.attname, ',' ORDER BY a.attname) FROM pg_index i JOIN "
            "pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE "
            f"i.indrelid = '{pg_schema}.account_scores'::regclass AND i.indisprimary"
        ).fetchall()
        types = dict(connection.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE "
            f"table_schema = '{pg_schema}' AND table_name = 'account_scores'").fetchall())
    assert key == "account_id,model"
    assert types["roles_engaged"] == "jsonb" and types["as_of"] == "timestamp with time zone"
    later = "2026-07-01T00:00:00Z"
    leadscore(*base, "--as-of", later, "--out", f"{pg_schema}.scores", "--accounts",
              f"{pg_schema}.account_scores", "--mode", "upsert")
    after = account_rows(pg_schema, "account_scores")
    assert after.pop(("b2b-software", "gone"))["fit"] == 1
    assert_accounts(example_want(later), after)
    leadscore(*base, "--as-of", EXAMPLE_AS_OF, "--out", f"{pg_schema}.scores", "--accounts",
              f"{pg_schema}.account_scores")
    assert_accounts(want, account_rows(pg_schema, "account_scores"))
    into_file = tmp_path / "accounts.parquet"
    leadscore(*base, "--as-of", EXAMPLE_AS_OF, "--out", str(tmp_path / "scores.parquet"),
              "--accounts", str(into_file))
    assert_accounts(want, rows_of(pq.read_table(into_file), "account_id"))


@pytest.mark.postgres
def test_score_engine_postgres_layout_segment_accounts(tmp_path: Path) -> None:
    """`score --engine postgres --layout segment --accounts TABLE`: the accounts the loader's
    groups name, scored in the database; an accounts table beside the stream is refused."""
    models = [load_model(p) for p in EXAMPLES]
    args = ["score", "--engine", "postgres", "--db", postgres_url(),
            *(a for m in EXAMPLES for a in ("-m", str(m)))]
    with loader_schema_in_postgres(STREAM) as (schema, _):
        leadscore(*args, "--layout", "segment", "--schema", schema, "--as-of", EXAMPLE_AS_OF,
                  "--out", f"{schema}.scores", "--accounts", f"{schema}.account_scores")
        got = account_rows(schema, "account_scores")
        refused = leadscore(*args, "--layout", "segment", "--schema", schema, "--out",
                            f"{schema}.scores", "--accounts", f"{schema}.a",
                            "--account-traits", f"{schema}.groups", check=False)
    assert_accounts(want_accounts(models, str(STREAM[0]), str(STREAM[1]), None), got)
    assert refused.returncode != 0
    assert "--account-traits goes with --layout tables" in refused.stderr


# ---------------------------------------------------------------------------------- Spark

@pytest.mark.spark
def test_account_statement_on_spark_equals_score_accounts(spark: Any) -> None:
    """The B2B example's account statement for Spark, run by `spark.sql` over temp views of
    the example tables (the session in UTC, as the Spark runner sets it)."""
    from leadscore.engine.batch.spark import settings

    con = duckdb.connect()
    example_accounts(con)
    sources = {}
    for table in ("events", "leads", "accounts"):
        frame: pa.Table = con.sql(f"SELECT * FROM analytics.{table}").to_arrow_table()
        view = f"{table}_{uuid.uuid4().hex[:8]}"
        spark.createDataFrame(frame.to_pandas()).createOrReplaceTempView(view)
        sources[table] = Source(view, {f.name: f.dataType.simpleString()
                                       for f in spark.table(view).schema.fields})
    con.close()
    try:
        with settings(spark):
            sql = render(compile_account_scores(
                [load_model(B2B)], sources["events"], sources["leads"], sources["accounts"],
                as_of_us=parse_timestamp(EXAMPLE_AS_OF), dialect="spark"), "spark")
            got = rows_of(spark.sql(sql.rstrip().rstrip(";")).toArrow(), "account_id")
    finally:
        for source in sources.values():
            spark.catalog.dropTempView(source.name)
    assert_accounts(example_want(), got)
