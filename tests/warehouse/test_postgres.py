"""`leadscore score --engine postgres` (the plan run inside the real PostgreSQL, no export)
and the scores written back to a database table — PostgreSQL or a DuckDB file — replacing its
rows or upserting by (lead_id, model)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pyarrow.parquet as pq
import pytest

from leadscore import load_model, score_many
from leadscore.engine.batch.postgres import score_into, score_postgres
from leadscore.errors import InputError
from leadscore.io.databases import Target, load_postgres, write_scores
from leadscore.timeutil import parse_timestamp
from tests.conftest import postgres_url, require_postgres
from tests.engine.outputs import rows_of
from tests.warehouse.test_compile import (
    DATA,
    EXAMPLE_AS_OF,
    EXAMPLES,
    assert_rows_equal,
    example_scores,
    leadscore,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def schema() -> Iterator[str]:
    """A fresh schema holding the example events and leads as `events` / `leads`."""
    require_postgres()
    name = f"w_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url(), autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {name}")
    con = duckdb.connect()
    con.sql("SET TimeZone = 'UTC'")
    events = con.sql("SELECT * REPLACE (CAST(\"timestamp\" AS TIMESTAMPTZ) AS \"timestamp\") "
                     f"FROM read_csv('{DATA / 'events.csv'}')").to_arrow_table()
    leads = con.sql(f"SELECT * FROM read_csv('{DATA / 'leads.csv'}')").to_arrow_table()
    load_postgres(postgres_url(), f"{name}.events", events)
    load_postgres(postgres_url(), f"{name}.leads", leads)
    try:
        yield name
    finally:
        with psycopg.connect(postgres_url(), autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {name} CASCADE")


def table_rows(schema: str, table: str) -> dict[Any, Any]:
    with psycopg.connect(postgres_url()) as connection:
        cursor = connection.execute(f'SELECT * FROM {schema}."{table}"')
        names = [d.name for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return {(r["model"], r["lead_id"]): {k: v for k, v in r.items() if k != "interests"}
            for r in rows}


def plain(rows: dict[Any, Any]) -> dict[Any, Any]:
    """Rows as `rows_of` gives them (timestamps as µs)."""
    return {k: {c: parse_timestamp(v) if isinstance(v, datetime) else v
                for c, v in row.items()} for k, row in rows.items()}


def test_score_postgres_equals_duckdb(schema: str) -> None:
    models = [load_model(p) for p in EXAMPLES]
    got = score_postgres(models, postgres_url(), f"{schema}.events", f"{schema}.leads",
                         as_of=EXAMPLE_AS_OF)
    assert got.schema.names[:2] == ["lead_id", "model"]
    assert_rows_equal(example_scores(), rows_of(got))


def test_cli_scores_in_the_database_into_a_table_replace_and_upsert(schema: str) -> None:
    base = ["score", "--engine", "postgres", "--db", postgres_url(), "-m", str(EXAMPLES[0]),
            "-m", str(EXAMPLES[1]), "--events", f"{schema}.events", "--leads",
            f"{schema}.leads"]
    done = leadscore(*base, "--as-of", EXAMPLE_AS_OF, "--out", f"{schema}.scores")
    assert "no export" in done.stdout + done.stderr
    want = example_scores()
    assert_rows_equal(want, plain(table_rows(schema, "scores")))
    # A lead scored before that is not in this run: replace drops it, upsert keeps it.
    with psycopg.connect(postgres_url()) as connection:
        connection.execute(f"INSERT INTO {schema}.scores (lead_id, model, fit) "
                           "VALUES ('gone', 'b2b-software', 1)")
    later = "2026-07-01T00:00:00Z"
    leadscore(*base, "--as-of", later, "--out", f"{schema}.scores", "--mode", "upsert")
    after = plain(table_rows(schema, "scores"))
    assert ("b2b-software", "gone") in after
    del after[("b2b-software", "gone")]
    assert_rows_equal(example_scores(later), after)
    leadscore(*base, "--as-of", EXAMPLE_AS_OF, "--out", f"{schema}.scores")
    assert_rows_equal(want, plain(table_rows(schema, "scores")))
    with psycopg.connect(postgres_url()) as connection:
        [(key,)] = connection.execute(
            "SELECT string_agg(a.attname, ',' ORDER BY a.attname) FROM pg_index i JOIN "
            "pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            f"WHERE i.indrelid = '{schema}.scores'::regclass AND i.indisprimary").fetchall()
    assert key == "lead_id,model"


def test_cli_scores_in_the_database_into_a_file(schema: str, tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    leadscore("score", "--engine", "postgres", "--db", postgres_url(), "-m", str(EXAMPLES[0]),
              "-m", str(EXAMPLES[1]), "--events", f"{schema}.events", "--leads",
              f"{schema}.leads", "--as-of", EXAMPLE_AS_OF, "--out", str(out))
    assert_rows_equal(example_scores(), rows_of(pq.read_table(out)))


def test_postgres_engine_errors_are_clear(schema: str) -> None:
    models = ["-m", str(EXAMPLES[0])]
    no_db = leadscore("score", "--engine", "postgres", *models, "--events", "events",
                      "--out", "x", check=False)
    assert no_db.returncode != 0 and "--db postgresql://" in no_db.stderr
    missing = leadscore("score", "--engine", "postgres", "--db", postgres_url(), *models,
                        "--events", f"{schema}.nowhere", "--out", "x", check=False)
    assert missing.returncode != 0 and f"{schema}.nowhere: no such table" in missing.stderr
    with pytest.raises(InputError, match="mode 'merge'"):
        score_into([load_model(EXAMPLES[0])], postgres_url(), f"{schema}.events", None,
                   f"{schema}.s", mode="merge")


def test_duckdb_scores_written_back_to_postgres(schema: str, tmp_path: Path) -> None:
    """`leadscore score` on DuckDB with --out postgresql://…/DB/SCHEMA.TABLE: the scores
    table with its types (interests as JSONB), replaced or upserted."""
    database = postgres_url().rsplit("/", 1)
    target = f"{database[0]}/{database[1]}/{schema}.lead_scores"
    leadscore("score", "-m", str(EXAMPLES[0]), "-m", str(EXAMPLES[1]), "--events",
              str(DATA / "events.csv"), "--leads", str(DATA / "leads.csv"), "--as-of",
              EXAMPLE_AS_OF, "--out", target)
    with psycopg.connect(postgres_url()) as connection:
        types = dict(connection.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE "
            f"table_schema = '{schema}' AND table_name = 'lead_scores'").fetchall())
    assert types["as_of"] == "timestamp with time zone" and types["mql"] == "boolean"
    assert types["interests"] == "jsonb" and types["fit"] == "double precision"
    assert_rows_equal(example_scores(), plain(table_rows(schema, "lead_scores")))


@pytest.mark.parametrize("kind", ["postgres", "duckdb"])
def test_write_scores_replace_and_upsert(kind: str, schema: str, tmp_path: Path) -> None:
    models = [load_model(p) for p in EXAMPLES]
    first = score_many(models, str(DATA / "events.csv"), str(DATA / "leads.csv"),
                       as_of=EXAMPLE_AS_OF)
    later = score_many(models[:1], str(DATA / "events.csv"), str(DATA / "leads.csv"),
                       as_of="2026-07-01T00:00:00Z")
    database = postgres_url().rsplit("/", 1)
    target = f"{database[0]}/{database[1]}/{schema}.s" if kind == "postgres" \
        else str(tmp_path / "scores.duckdb")

    def read() -> dict[Any, Any]:
        if kind == "postgres":
            return plain(table_rows(schema, "s"))
        con = duckdb.connect(target, read_only=True)
        try:
            return {k: {c: v for c, v in row.items() if c != "interests"} for k, row in
                    rows_of(con.sql("SELECT * FROM scores").to_arrow_table()).items()}
        finally:
            con.close()

    write_scores(first, target)
    assert_rows_equal(rows_of(first.drop_columns(["interests"])), read())
    write_scores(later, target, mode="upsert")
    merged = rows_of(first.drop_columns(["interests"]))
    merged.update(rows_of(later.drop_columns(["interests"])))
    assert_rows_equal(merged, read())
    write_scores(later, target, mode="replace")
    assert_rows_equal(rows_of(later.drop_columns(["interests"])), read())


def test_targets_are_parsed_or_refused() -> None:
    where = Target.parse("postgresql://u@h:5432/db/analytics.scores?sslmode=require")
    assert (where.kind, where.location, where.table) == (
        "postgres", "postgresql://u@h:5432/db?sslmode=require", "analytics.scores")
    assert Target.parse("out/scores.duckdb").table == "scores"
    with pytest.raises(InputError, match=r"DATABASE/SCHEMA\.TABLE"):
        Target.parse("postgresql://u@h/db")
    with pytest.raises(InputError, match="not a database target"):
        Target.parse("scores.csv")
