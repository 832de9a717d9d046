"""`leadscore compile`: the plan as one statement per warehouse dialect.

Executed here: DuckDB, PostgreSQL and Spark run the compiled statement in the engine registry
(tests/engine/engines.py: `compiled-duckdb`, `postgres`, `compiled-spark` get every golden
file and every generic check). Rendered only: Snowflake, BigQuery and Redshift — their SQL
for every golden and example model is checked in under `tests/fixtures/compiled/`, compared
byte for byte and parsed back by sqlglot in its dialect
(`LEADSCORE_UPDATE_PLANS=1 python -m pytest tests/warehouse/test_compile.py` rewrites them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from leadscore import load_model, score_many
from leadscore.engine.batch.inputs import table_columns
from leadscore.engine.sql.dialects import DIALECTS, EXECUTED
from leadscore.engine.sql.warehouse import Source, compile_scores, declared_columns, render
from leadscore.model.schema import Model
from leadscore.timeutil import parse_timestamp
from tests.engine.outputs import rows_of, same
from tests.engine.test_golden import GOLDEN, load_case, world_of

ROOT = Path(__file__).parents[2]
COMPILED = ROOT / "tests" / "fixtures" / "compiled"
EXAMPLES = [ROOT / "examples" / "b2c-art-supplies.yaml", ROOT / "examples" / "b2b-software.yaml"]
DATA = ROOT / "examples" / "data"
EXAMPLE_AS_OF = "2026-06-01T00:00:00Z"
RENDERED_ONLY = tuple(d for d in DIALECTS if d not in EXECUTED)


def example_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The example events and leads as warehouse tables `analytics.events` / `.leads` (the
    timestamp a TIMESTAMPTZ, as a loader writes it)."""
    con.sql("SET TimeZone = 'UTC'")
    con.sql("CREATE SCHEMA IF NOT EXISTS analytics")
    con.sql("CREATE OR REPLACE TABLE analytics.events AS SELECT * REPLACE (CAST(\"timestamp\" "
            f"AS TIMESTAMPTZ) AS \"timestamp\") FROM read_csv('{DATA / 'events.csv'}')")
    con.sql("CREATE OR REPLACE TABLE analytics.leads AS SELECT * FROM "
            f"read_csv('{DATA / 'leads.csv'}')")


def columns(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, str]:
    """The columns of table `name` (`schema.table` unquoted) and their DuckDB types."""
    relation = con.sql(f"SELECT * FROM {name} LIMIT 0")
    return {c: str(t) for c, t in zip(relation.columns, relation.types, strict=True)}


def _cases() -> list[tuple[str, list[Model], Source, Source | None, int]]:
    """(name, models, events, leads, as_of) of every golden and example model, the columns as
    DuckDB reads the tables."""
    cases = []
    con = duckdb.connect()
    for path in GOLDEN:
        world = world_of(load_case(path))
        sources = {}
        for name, table in (("events", world.events_table()), ("leads", world.leads_table())):
            con.register("__t", table)
            con.sql(f'CREATE OR REPLACE TABLE "{path.stem}_{name}" AS SELECT * FROM "__t"')
            con.unregister("__t")
            if table.num_rows or name == "events":
                sources[name] = Source(f"analytics.{name}",
                                       table_columns(con, f"{path.stem}_{name}"))
        cases.append((path.stem, list(world.models), sources["events"], sources.get("leads"),
                      world.as_of))
    example_tables(con)
    for path in EXAMPLES:
        cases.append((path.stem, [load_model(path)],
                      Source("analytics.events", columns(con, "analytics.events")),
                      Source("analytics.leads", columns(con, "analytics.leads")),
                      parse_timestamp(EXAMPLE_AS_OF)))
    con.close()
    return cases


CASES = _cases()


@pytest.mark.parametrize("dialect", RENDERED_ONLY)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_rendered_sql_matches_its_fixture_and_parses_back(case: Any, dialect: str) -> None:
    name, models, events, leads, as_of = case
    sql = render(compile_scores(models, events, leads, as_of_us=as_of, dialect=dialect),
                 dialect)
    path = COMPILED / f"{name}.{dialect}.sql"
    if os.environ.get("LEADSCORE_UPDATE_PLANS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sql, encoding="utf-8")
    assert path.exists(), f"no fixture {path.name}: run with LEADSCORE_UPDATE_PLANS=1"
    assert sql == path.read_text(encoding="utf-8"), f"{path.name} changed: read the diff"
    statements = [s for s in sqlglot.parse(path.read_text(), read=dialect) if s is not None]
    assert len(statements) == 1 and isinstance(statements[0], exp.Select)
    # Its output columns are the scores' columns.
    assert [e.alias_or_name for e in statements[0].expressions][:2] == ["lead_id", "model"]


def test_redshift_replaces_a_pattern_without_postgresql_s_flag() -> None:
    """Redshift's REGEXP_REPLACE takes a position as its fourth argument: PostgreSQL's `'g'`
    there is refused by Redshift (sqlglot writes it for the dialects it derives from
    PostgreSQL)."""
    _, models, events, leads, as_of = CASES[-1]
    sql = render(compile_scores(models, events, leads, as_of_us=as_of, dialect="redshift"),
                 "redshift")
    calls = list(sqlglot.parse_one(sql, read="redshift").find_all(exp.RegexpReplace))
    assert calls and all(node.args.get("position") is None and node.args.get("modifiers")
                         is None for node in calls)
    assert "'g')" not in sql


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_every_dialect_gets_one_statement_with_create(dialect: str) -> None:
    _, models, events, leads, _ = CASES[-1]
    sql = render(compile_scores(models, events, leads, as_of_us=None, dialect=dialect,
                                create="analytics.lead_scores"), dialect)
    [statement] = sqlglot.parse(sql, read=dialect)
    assert isinstance(statement, exp.Create)
    assert statement.this.sql(dialect=dialect).replace('"', "").replace("`", "") == \
        "analytics.lead_scores"


def test_the_rendered_only_dialects_are_said_to_be() -> None:
    assert set(EXECUTED) == {"duckdb", "postgres", "spark"}
    assert set(RENDERED_ONLY) == {"snowflake", "bigquery", "redshift"}


def leadscore(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leadscore.cli", *args], capture_output=True,
                          text=True, check=check, cwd=ROOT)


def example_scores(as_of: Any = EXAMPLE_AS_OF) -> dict[Any, Any]:
    models = [load_model(p) for p in EXAMPLES]
    return rows_of(score_many(models, str(DATA / "events.csv"), str(DATA / "leads.csv"),
                              as_of=as_of).drop_columns(["interests"]))


def assert_rows_equal(want: dict[Any, Any], got: dict[Any, Any]) -> None:
    assert got.keys() == want.keys()
    for key, row in want.items():
        assert same(row, got[key]), (key, row, got[key])


@pytest.mark.parametrize("ask_the_database", [False, True], ids=["declared", "from-db"])
def test_compile_cli_on_duckdb_equals_score_many(tmp_path: Path, ask_the_database: bool
                                                 ) -> None:
    """The example models compiled by the CLI, with the columns the models read (no
    database at hand) or read from the DuckDB file, run there: score_many's scores."""
    db = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    example_tables(con)
    con.close()
    out = tmp_path / "scores.sql"
    leadscore("compile", "-m", str(EXAMPLES[0]), "-m", str(EXAMPLES[1]), "--dialect", "duckdb",
              "--events-table", "analytics.events", "--leads-table", "analytics.leads",
              "--as-of", EXAMPLE_AS_OF, "--out", str(out), "--create", "analytics.scores",
              *(["--db", str(db)] if ask_the_database else []))
    con = duckdb.connect(str(db))
    con.sql(out.read_text())
    got = rows_of(con.sql("SELECT * FROM analytics.scores").to_arrow_table())
    con.close()
    assert_rows_equal(example_scores(), got)


def test_without_as_of_the_warehouse_scores_as_of_its_current_time(tmp_path: Path) -> None:
    con = duckdb.connect()
    example_tables(con)
    models = [load_model(p) for p in EXAMPLES]
    events, leads = declared_columns(models)
    before = datetime.now(UTC)
    sql = render(compile_scores(models, Source("analytics.events", events),
                                Source("analytics.leads", leads), as_of_us=None,
                                dialect="duckdb"), "duckdb")
    result = con.sql(sql).to_arrow_table()
    after = datetime.now(UTC)
    as_of = {value for value in result.column("as_of").to_pylist()}
    assert len(as_of) == 1 and before <= next(iter(as_of)) <= after
    assert_rows_equal(example_scores(next(iter(as_of))), rows_of(result))


def test_compile_errors_name_what_is_wrong(tmp_path: Path) -> None:
    wrong = leadscore("compile", "-m", str(EXAMPLES[0]), "--dialect", "snowflak",
                      "--events-table", "e", check=False)
    assert wrong.returncode != 0 and "Did you mean 'snowflake'" in wrong.stderr
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.sql("CREATE TABLE events (lead_id VARCHAR, ts TIMESTAMPTZ)")
    con.close()
    missing = leadscore("compile", "-m", str(EXAMPLES[0]), "--dialect", "duckdb",
                        "--events-table", "events", "--db", str(db), check=False)
    assert missing.returncode != 0 and "no column 'timestamp'" in missing.stderr
    absent = leadscore("compile", "-m", str(EXAMPLES[0]), "--dialect", "duckdb",
                       "--events-table", "nowhere", "--db", str(db), check=False)
    assert absent.returncode != 0 and "nowhere" in absent.stderr
    layout = leadscore("compile", "-m", str(EXAMPLES[0]), "--dialect", "duckdb",
                       "--events-table", "events", "--layout", "rudder", check=False)
    assert layout.returncode != 0 and "--layout" in layout.stderr


def test_declared_columns_follow_how_the_model_compares_them() -> None:
    events, leads = declared_columns([load_model(p) for p in EXAMPLES])
    assert events["revenue"] == "DOUBLE" and events["email_id"] == "VARCHAR"
    assert leads["age"] == "DOUBLE" and leads["email"] == "VARCHAR"
    assert leads["account.industry"] == "VARCHAR"
    assert list(events)[:5] == ["lead_id", "timestamp", "type", "event", "path"]


def test_timestamps_as_epoch_numbers_or_text_read_as_the_file_readers_do() -> None:
    """A warehouse may hold the time as epoch seconds, ms or µs (by magnitude, as the file
    readers read numbers) or as ISO-8601 text."""
    model = Model.model_validate({"name": "stores", "engagement": {
        "decay": {"half_life_days": 30}, "rules": [{"name": "store", "page": "/stores*",
                                                     "points": 20}]}})
    con = duckdb.connect()
    con.sql("SET TimeZone = 'UTC'")
    stamp = "2026-05-20T10:00:00Z"
    us = parse_timestamp(stamp)
    rows = pa.table({"lead_id": ["s", "ms", "us", "text"],
                     "timestamp": [str(us // 10**6), str(us // 1000), str(us), stamp],
                     "type": ["page"] * 4, "path": ["/stores/berlin"] * 4})
    con.register("raw", rows)
    con.sql("CREATE TABLE events AS SELECT lead_id, CASE WHEN lead_id = 'text' THEN NULL ELSE "
            "CAST(timestamp AS BIGINT) END AS n, timestamp AS t, type, path FROM raw")
    results = []
    for column, which in (("n", "<>"), ("t", "=")):
        con.sql(f"CREATE OR REPLACE VIEW v AS SELECT lead_id, {column} AS timestamp, type, "
                f"path FROM events WHERE lead_id {which} 'text'")
        sql = render(compile_scores([model], Source("v", table_columns(con, "v")), None,
                                    as_of_us=parse_timestamp(EXAMPLE_AS_OF), dialect="duckdb"),
                     "duckdb")
        results.append(rows_of(con.sql(sql).to_arrow_table()))
    numbers, texts = results
    engagement = {key[1]: row["engagement"] for key, row in numbers.items()}
    assert set(engagement) == {"s", "ms", "us"} and len(set(engagement.values())) == 1
    assert same(texts[(model.name, "text")]["engagement"], engagement["s"])
    assert same(engagement["s"], 20 * 2 ** (-(parse_timestamp(EXAMPLE_AS_OF) - us)
                                           / (30 * 86_400_000_000)))
