from __future__ import annotations

import pytest
from sqlalchemy import delete, inspect, select

from leadscore.store import LATEST, Database, StoreError, migrate, normalize_url
from leadscore.store.migrate import MIGRATIONS
from leadscore.store.schema import schema_version


def test_urls() -> None:
    assert normalize_url(None) == "sqlite:///leadscore.db"
    assert normalize_url("data/x.db") == "sqlite:///data/x.db"
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(StoreError, match="unsupported database URL"):
        normalize_url("mysql://u@h/db")


def test_migrate_creates_every_table_once(db_url: str) -> None:
    db = Database(db_url)
    try:
        assert migrate(db) == LATEST
        assert migrate(db) == LATEST
        with db.read() as connection:
            tables = set(inspect(connection).get_table_names())
            versions = connection.execute(select(schema_version.c.version)).scalars().all()
        assert {"leads", "identities", "accounts", "events", "lead_state", "scores", "models",
                "outbox", "schema_version"} <= tables
        # Every step once, in order (numbers are claimed per branch: one may be missing).
        assert versions == [number for number, _, _ in MIGRATIONS]
    finally:
        db.close()


def test_version_5_drops_the_redundant_scores_index(db_url: str) -> None:
    """A store of version 4 had (model, score) beside (model, score, lead_id); a new store
    never gets it, an old one loses it on migrating."""
    db = Database(db_url)
    try:
        migrate(db)
        with db.read() as connection:
            names = {i["name"] for i in inspect(connection).get_indexes("scores")}
        assert "ix_scores_model_score" not in names
        assert "ix_scores_model_score_lead" in names
        with db.begin() as connection:     # back to version 4, as such a store was
            connection.exec_driver_sql(
                "CREATE INDEX ix_scores_model_score ON scores (model, score)")
            connection.execute(delete(schema_version).where(schema_version.c.version >= 5))
        assert migrate(db) == LATEST
        with db.read() as connection:
            names = {i["name"] for i in inspect(connection).get_indexes("scores")}
            versions = connection.execute(select(schema_version.c.version)).scalars().all()
        assert "ix_scores_model_score" not in names
        assert "ix_scores_model_score_lead" in names
        assert 5 in versions
    finally:
        db.close()


def test_version_7_adds_suppressions_and_the_address_of_each_email_sent(db_url: str) -> None:
    """A store of version 5 had e-mails sent by lead id only and no suppression tables."""
    db = Database(db_url)
    try:
        migrate(db)
        with db.begin() as connection:     # back to version 5, as such a store was
            connection.exec_driver_sql("DROP INDEX ix_email_sends_address")
            connection.exec_driver_sql("ALTER TABLE email_sends DROP COLUMN address_hash")
            connection.exec_driver_sql("DROP TABLE email_suppressions")
            connection.exec_driver_sql("DROP TABLE email_optins")
            connection.execute(delete(schema_version).where(schema_version.c.version >= 6))
        assert migrate(db) == LATEST
        with db.read() as connection:
            found = inspect(connection)
            assert "address_hash" in {c["name"] for c in found.get_columns("email_sends")}
            assert "ix_email_sends_address" in {i["name"] for i in
                                                found.get_indexes("email_sends")}
            assert {"email_suppressions", "email_optins"} <= set(found.get_table_names())
    finally:
        db.close()


def test_a_newer_store_is_refused(db_url: str) -> None:
    db = Database(db_url)
    try:
        migrate(db)
        with db.begin() as connection:
            connection.execute(schema_version.insert().values(
                version=LATEST + 1, description="from the future", applied_at=0))
        with pytest.raises(StoreError, match="newer than this leadscore knows"):
            migrate(db)
    finally:
        db.close()


def test_sqlite_is_durable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = Database(tmp_path / "x.db")
    try:
        with db.read() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2   # FULL
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    finally:
        db.close()


def test_sqlite_normal_synchronous_is_a_choice(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = Database(tmp_path / "x.db", synchronous="normal")
    try:
        with db.read() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1   # NORMAL
    finally:
        db.close()
    with pytest.raises(StoreError, match="unknown SQLite synchronous setting 'off'"):
        Database(tmp_path / "y.db", synchronous="off")
