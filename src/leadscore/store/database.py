"""Connecting to the store: SQLite (the default, a file) or PostgreSQL (psycopg 3).

SQLite runs in WAL mode; write transactions start with `BEGIN IMMEDIATE`, one writer at a
time, others waiting up to the busy timeout. Durability of a committed (acknowledged) message:

- `synchronous="full"` (the default): the WAL is fsynced at every commit, so a committed
  transaction survives a SIGKILL of the server, an OS crash and a power cut. The fsync is
  most of a single message's latency (~4 ms median, ~12 ms p99 on the benchmark machine).
- `synchronous="normal"`: no fsync at commit (only at checkpoints). A committed transaction
  still survives a SIGKILL or any crash of the server process (it is in the OS's page cache),
  but the last transactions before a power cut or an OS crash may be lost; the database is
  never corrupted. Choose it where a few seconds of events lost to a power cut is acceptable.

PostgreSQL commits are as durable as the server is configured (`synchronous_commit`). On
PostgreSQL transient failures (deadlock, serialization, a unique key raced by another worker)
are retried by `Database.write`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool

from leadscore.errors import LeadscoreError
from leadscore.jsontext import dumps

T = TypeVar("T")

DEFAULT_URL = "sqlite:///leadscore.db"
BUSY_TIMEOUT_S = 30
LOCK_POLL_S = 0.001      # how often a waiting SQLite writer tries for the lock (`begin_immediate`)
SYNCHRONOUS = ("full", "normal")     # SQLite's synchronous settings we support (see above)
# SQLSTATEs worth retrying: serialization failure, deadlock, unique violation (a race).
_RETRY_STATES = {"40001", "40P01", "23505"}


class StoreError(LeadscoreError):
    """The store cannot be opened, migrated or written."""


class NotFound(LeadscoreError, KeyError):
    """No such lead, model, version or handoff."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


def normalize_url(url: str | Path | None) -> str:
    """A SQLAlchemy URL: a bare path is a SQLite file; `postgresql://` means psycopg 3."""
    if url is None:
        return DEFAULT_URL
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    if text.startswith(("postgresql+psycopg://", "sqlite:")):
        return text
    if "://" in text:
        raise StoreError(f"unsupported database URL {text!r}; expected a SQLite file path, "
                         "sqlite:///path or postgresql://user@host/db")
    return f"sqlite:///{text}"


def begin_immediate(dbapi_connection: Any) -> None:
    """BEGIN IMMEDIATE on SQLite, trying again every `LOCK_POLL_S` while another connection
    writes, for up to `BUSY_TIMEOUT_S`.

    SQLite's own busy handler naps longer and longer (1, 2, 5, 10 … 25, 50, 100 ms) between
    tries: a writer that waited through a few transactions wakes tens of ms after the lock
    is free, or keeps missing it behind back-to-back ones (a single track waited 181 ms so
    while the lock was mostly free). Other statements keep the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=0")
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(LOCK_POLL_S)
    finally:
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        cursor.close()


class Database:
    """An open store: an SQLAlchemy engine and transactions for reading and writing."""

    def __init__(self, url: str | Path | None = None, *, synchronous: str = "full"):
        self.url = normalize_url(url)
        self.dialect = "postgresql" if self.url.startswith("postgresql") else "sqlite"
        if synchronous not in SYNCHRONOUS:
            raise StoreError(f"unknown SQLite synchronous setting {synchronous!r}; expected "
                             f"{' or '.join(SYNCHRONOUS)}")
        self.synchronous = synchronous
        self._upserts: dict[tuple[Any, ...], Any] = {}
        try:
            self.engine = self._create_engine()
        except Exception as exc:  # bad URLs and missing drivers surface here
            raise StoreError(f"cannot open {self.url!r}: {exc}") from None

    def _create_engine(self) -> Engine:
        if self.dialect == "postgresql":
            return create_engine(self.url, pool_pre_ping=True, pool_size=8, max_overflow=8,
                                 json_serializer=dumps, hide_parameters=True)
        memory = self.in_memory
        if not memory:
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            self.url, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
            json_serializer=dumps, hide_parameters=True,    # traits never reach a log
            **({"poolclass": StaticPool} if memory else {}))

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None     # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            # FULL: an acknowledged message survives a power cut; NORMAL: only a crash of
            # this process (see the module's docstring).
            cursor.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection: Connection) -> None:
            mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
            if mode == "IMMEDIATE":
                begin_immediate(connection.connection.dbapi_connection)
            else:
                connection.exec_driver_sql(f"BEGIN {mode}")

        return engine

    @property
    def in_memory(self) -> bool:
        """An in-memory SQLite database: one connection, shared by every thread (a read
        beside a write transaction would run inside it)."""
        return self.url in ("sqlite://", "sqlite:///:memory:")

    # ---- transactions

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot on SQLite; rolled back at the end)."""
        with self.engine.connect() as connection:
            connection.execution_options(sqlite_begin="DEFERRED")
            with connection.begin():
                yield connection

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction, committed on leaving the block without an exception."""
        with self.engine.begin() as connection:
            yield connection

    def write(self, work: Callable[[Connection], T], *, attempts: int = 4) -> T:
        """Run `work` in a write transaction, again on a transient failure (deadlock, lock
        timeout, a race on a unique key); `work` must be safe to repeat."""
        for attempt in range(1, attempts + 1):
            try:
                with self.begin() as connection:
                    return work(connection)
            except DBAPIError as exc:
                if attempt == attempts or not self._transient(exc):
                    raise
                time.sleep(0.01 * 2 ** attempt)
        raise AssertionError("unreachable")

    def _transient(self, exc: DBAPIError) -> bool:
        state = getattr(exc.orig, "sqlstate", None)
        if state in _RETRY_STATES:
            return True
        return self.dialect == "sqlite" and "locked" in str(exc.orig)

    # ---- dialect helpers

    def insert(self, table: Any) -> Any:
        """An INSERT that supports `on_conflict_do_nothing` / `on_conflict_do_update`."""
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    def upsert(self, connection: Connection, table: Any, values: dict[str, Any],
               keys: tuple[str, ...]) -> None:
        """INSERT … ON CONFLICT (keys) DO UPDATE, the statement built once per shape."""
        self.upsert_many(connection, table, [values], keys)

    def upsert_many(self, connection: Connection, table: Any, rows: list[dict[str, Any]],
                    keys: tuple[str, ...]) -> None:
        """`upsert` of many rows of one shape (the first row's keys) in one executemany."""
        if not rows:
            return
        shape = (table.name, tuple(rows[0]), keys)
        statement = self._upserts.get(shape)
        if statement is None:
            statement = self.insert(table)
            statement = self._upserts[shape] = statement.on_conflict_do_update(
                index_elements=list(keys),
                set_={k: statement.excluded[k] for k in rows[0] if k not in keys})
        connection.execute(statement, rows if len(rows) > 1 else rows[0])

    def close(self) -> None:
        self.engine.dispose()
