"""`leadscore dbt`: the package it writes is built by dbt itself (`dbt build`) with
dbt-duckdb and with dbt-postgres against the real PostgreSQL; the scores tables equal
`score_many`'s, the B2B model's account scores table `score_accounts`', and the models' worked
examples run as dbt data tests — one that does not hold fails the build.

dbt runs from its own virtual environment (its pins clash with the test extra's, see
requirements/dbt.txt): LEADSCORE_DBT names a dbt executable, else the test creates one under
~/.cache/leadscore/dbt-venv (once; pip's cache keeps it quick)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
import yaml

from leadscore import load_model
from tests.conftest import postgres_url, require_postgres
from tests.engine.outputs import rows_of
from tests.warehouse.test_accounts import (
    assert_accounts,
    example_accounts,
    example_want,
    want_accounts,
)
from tests.warehouse.test_compile import (
    EXAMPLE_AS_OF,
    EXAMPLES,
    ROOT,
    assert_rows_equal,
    example_scores,
    leadscore,
)
from tests.warehouse.test_postgres import plain
from tests.warehouse.test_segment_layout import (
    STREAM,
    expected,
    loader_schema_in_postgres,
    loader_tables,
)

VENV = Path.home() / ".cache" / "leadscore" / "dbt-venv"


@cache
def _dbt() -> tuple[str | None, str]:
    """(the dbt executable, or None; why not)."""
    given = os.environ.get("LEADSCORE_DBT")
    if given:
        return (given, "") if Path(given).exists() else (None, f"LEADSCORE_DBT={given}: no "
                                                         "such file")
    executable = VENV / "bin" / "dbt"
    if not executable.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True,
                           capture_output=True, timeout=300)
            subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "-r",
                            str(ROOT / "requirements" / "dbt.txt")], check=True,
                           capture_output=True, timeout=1200)
        except (subprocess.SubprocessError, OSError) as exc:
            return None, f"cannot install dbt into {VENV}: {exc}"
    return str(executable), ""


def dbt_executable() -> str:
    executable, problem = _dbt()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail(f"the dbt tests must run in CI: {problem}")
        pytest.skip(problem)
    return executable


def dbt(project: Path, profiles: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    (project / "profiles.yml").write_text(yaml.safe_dump({"leadscore": {
        "target": "test", "outputs": {"test": profiles}}}))
    return subprocess.run([dbt_executable(), *args, "--project-dir", str(project),
                           "--profiles-dir", str(project), "--vars",
                           f"{{leadscore_as_of: '{EXAMPLE_AS_OF}'}}"],
                          capture_output=True, text=True, cwd=project, timeout=600)


def package(out: Path, dialect: str, db: str, *models: Path) -> Path:
    leadscore("dbt", *(a for m in models for a in ("-m", str(m))), "--dialect", dialect,
              "--events-table", "analytics.events", "--leads-table", "analytics.leads",
              "--accounts-table", "analytics.accounts", "--db", db, "--out", str(out))
    return out


def wrong_example(tmp_path: Path) -> Path:
    """The B2C model with one worked example expecting what is not so."""
    text = EXAMPLES[0].read_text().replace("temperature: warm, mql: false",
                                           "temperature: hot, mql: false")
    assert "temperature: hot, mql: false" in text
    path = tmp_path / "wrong" / EXAMPLES[0].name
    path.parent.mkdir()
    path.write_text(text)
    return path


def assert_build(project: Path, profiles: dict[str, Any], want: dict[Any, Any],
                 scores: Callable[[str], dict[Any, Any]], want_accounts: dict[Any, Any]
                 ) -> None:
    """`dbt build` passes (both scores models and the B2B account scores model, the 8 worked
    examples, 2 generic tests a model) and the scores it wrote equal `want` (score_many's),
    the account scores `want_accounts` (score_accounts')."""
    built = dbt(project, profiles, "build")
    assert built.returncode == 0, built.stdout[-3000:]
    assert "PASS=17 " in built.stdout and "ERROR=0" in built.stdout, built.stdout[-3000:]
    assert_rows_equal(want, scores("lead_id"))
    assert_accounts(want_accounts, scores("account_id"))


def assert_build_and_examples(project: Path, profiles: dict[str, Any], wrong: Path,
                              scores: Callable[[str], dict[Any, Any]]) -> None:
    """`assert_build` against score_many and score_accounts on the example tables, and an
    example that does not hold fails."""
    assert_build(project, profiles, example_scores(), scores, example_want())
    # An example that does not hold fails its data test.
    failing = [p for p in (wrong / "tests").iterdir() if "newsletter_reader" in p.name]
    [test] = failing
    (project / "tests" / test.name).write_text(test.read_text())
    again = dbt(project, profiles, "test", "--select", test.stem)
    assert again.returncode != 0 and "FAIL 1" in again.stdout and test.stem in again.stdout


@pytest.fixture
def duckdb_file(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    example_accounts(con)
    con.close()
    return path


TABLES = {"lead_id": ("scores_b2c_art_supplies", "scores_b2b_software"),
          "account_id": ("account_scores_b2b_software",)}


def duckdb_scores(path: Path, key: str = "lead_id") -> dict[Any, Any]:
    """The rows of both examples' scores tables (`key` "account_id": the B2B account scores
    table) dbt built in the DuckDB file."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = {}
        for table in TABLES[key]:
            rows.update(rows_of(con.sql(f"SELECT * FROM scores.{table}").to_arrow_table(),
                                key))
        return rows
    finally:
        con.close()


def postgres_scores(schema: str, key: str = "lead_id") -> dict[Any, Any]:
    """The rows of both examples' scores tables (`key` "account_id": the B2B account scores
    table) dbt built in PostgreSQL's `schema`."""
    rows = {}
    with psycopg.connect(postgres_url()) as connection:
        for table in TABLES[key]:
            cursor = connection.execute(f"SELECT * FROM {schema}.{table}")
            names = [d.name for d in cursor.description]
            for values in cursor.fetchall():
                row = dict(zip(names, values, strict=True))
                rows[(row["model"], row[key])] = row
    return plain(rows)


def postgres_profile(schema: str) -> dict[str, Any]:
    """dbt-postgres's profile for the test database, models built into `schema`."""
    address = postgres_url().split("://", 1)[1]
    user, _, rest = address.partition("@")
    host_port, _, database = rest.partition("/")
    host, _, port = host_port.partition(":")
    return {"type": "postgres", "host": host, "port": int(port or 5432), "user": user,
            "password": os.environ.get("PGPASSWORD", ""), "dbname": database.split("?")[0],
            "schema": schema, "threads": 1}


def test_dbt_build_on_duckdb(tmp_path: Path, duckdb_file: Path) -> None:
    dbt_executable()
    project = package(tmp_path / "package", "duckdb", str(duckdb_file), *EXAMPLES)
    wrong = package(tmp_path / "wrong-package", "duckdb", str(duckdb_file),
                    wrong_example(tmp_path))
    profiles = {"type": "duckdb", "path": str(duckdb_file), "schema": "scores",
                "threads": 1}
    assert_build_and_examples(project, profiles, wrong,
                              lambda key: duckdb_scores(duckdb_file, key))


@pytest.fixture
def postgres_schema(tmp_path: Path, duckdb_file: Path) -> Iterator[str]:
    """A fresh database schema `analytics` stand-in: the example tables in schema `s_…`."""
    require_postgres()
    from leadscore.io.databases import load_postgres

    name = f"s_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url(), autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {name}")
    con = duckdb.connect(str(duckdb_file), read_only=True)
    for table in ("events", "leads", "accounts"):
        load_postgres(postgres_url(), f"{name}.{table}",
                      con.sql(f"SELECT * FROM analytics.{table}").to_arrow_table())
    con.close()
    try:
        yield name
    finally:
        with psycopg.connect(postgres_url(), autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {name} CASCADE")
            connection.execute(f"DROP SCHEMA IF EXISTS {name}_scores CASCADE")


@pytest.mark.postgres
def test_dbt_build_on_postgres(tmp_path: Path, postgres_schema: str) -> None:
    dbt_executable()
    url = postgres_url()
    args = ["--dialect", "postgres", "--events-table", f"{postgres_schema}.events",
            "--leads-table", f"{postgres_schema}.leads", "--accounts-table",
            f"{postgres_schema}.accounts", "--db", url]
    project, wrong = tmp_path / "package", tmp_path / "wrong-package"
    leadscore("dbt", "-m", str(EXAMPLES[0]), "-m", str(EXAMPLES[1]), *args, "--out",
              str(project))
    leadscore("dbt", "-m", str(wrong_example(tmp_path)), *args, "--out", str(wrong))
    assert_build_and_examples(project, postgres_profile(f"{postgres_schema}_scores"), wrong,
                              lambda key: postgres_scores(f"{postgres_schema}_scores", key))


def segment_package(out: Path, dialect: str, db: str, schema: str) -> Path:
    leadscore("dbt", *(a for m in EXAMPLES for a in ("-m", str(m))), "--dialect", dialect,
              "--layout", "segment", "--schema", schema, "--db", db, "--out", str(out))
    sources = yaml.safe_load((out / "models" / "sources.yml").read_text())
    [source] = sources["sources"]
    assert source["schema"] == schema
    assert {"tracks", "pages", "identifies", "groups", "aliases"} <= \
        {t["name"] for t in source["tables"]}
    return out


def stream_accounts(models: list[Any]) -> dict[Any, Any]:
    """score_accounts on the example messages: the accounts their group calls name."""
    return want_accounts(models, str(STREAM[0]), str(STREAM[1]), None)


def test_dbt_build_layout_segment_on_duckdb(tmp_path: Path) -> None:
    """`leadscore dbt --layout segment --schema S`: the models read the loader's tables;
    dbt-duckdb builds them, the scores equal score_many on the same messages."""
    dbt_executable()
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    loader_tables(con, STREAM, "segment")
    con.close()
    project = segment_package(tmp_path / "package", "duckdb", str(path), "segment")
    profiles = {"type": "duckdb", "path": str(path), "schema": "scores", "threads": 1}
    models = [load_model(p) for p in EXAMPLES]
    assert_build(project, profiles, expected(STREAM, models, EXAMPLE_AS_OF),
                 lambda key: duckdb_scores(path, key), stream_accounts(models))


@pytest.mark.postgres
def test_dbt_build_layout_segment_on_postgres(tmp_path: Path) -> None:
    """The same with dbt-postgres against the real PostgreSQL."""
    dbt_executable()
    models = [load_model(p) for p in EXAMPLES]
    with loader_schema_in_postgres(STREAM) as (schema, _):
        project = segment_package(tmp_path / "package", "postgres", postgres_url(), schema)
        try:
            assert_build(project, postgres_profile(f"{schema}_scores"),
                         expected(STREAM, models, EXAMPLE_AS_OF),
                         lambda key: postgres_scores(f"{schema}_scores", key),
                         stream_accounts(models))
        finally:
            with psycopg.connect(postgres_url(), autocommit=True) as connection:
                connection.execute(f"DROP SCHEMA IF EXISTS {schema}_scores CASCADE")
