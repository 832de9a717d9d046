"""Shared fixtures.

Databases: `db_url` runs a test on SQLite (a temporary file) and on PostgreSQL, each test in a
fresh schema. PostgreSQL comes from LEADSCORE_TEST_POSTGRES (default
postgresql://postgres@127.0.0.1:5432/test); if it cannot be reached the PostgreSQL case is
skipped with the reason, or fails when LEADSCORE_REQUIRE_POSTGRES=1 (as in CI).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

POSTGRES_URL = os.environ.get("LEADSCORE_TEST_POSTGRES",
                              "postgresql://postgres@127.0.0.1:5432/test")


@cache
def _postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used, or None."""
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except Exception as exc:  # any failure to connect is a reason to skip
        return f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}"
    return None


def require_postgres() -> None:
    """Skip the test without a reachable PostgreSQL (fail with LEADSCORE_REQUIRE_POSTGRES=1)."""
    problem = _postgres_problem()
    if problem is not None:
        if os.environ.get("LEADSCORE_REQUIRE_POSTGRES") == "1":
            pytest.fail(problem)
        pytest.skip(problem)


def postgres_url() -> str:
    """The test PostgreSQL's URL (LEADSCORE_TEST_POSTGRES)."""
    return POSTGRES_URL


def _postgres_schema() -> Iterator[str]:
    import psycopg

    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty store: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'leadscore.db'}"
    else:
        yield from _postgres_schema()
