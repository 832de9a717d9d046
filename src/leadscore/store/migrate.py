"""Schema versions: a list of steps, applied in order on start; `schema_version` records them.

Step 1 creates every table. A later change appends a step (ALTER, backfill) and never edits an
applied one. Several processes may start at once: PostgreSQL takes an advisory lock, SQLite's
write transaction is exclusive.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, func, select

from leadscore.store import schema
from leadscore.store.database import Database, StoreError
from leadscore.timeutil import now_us

_LOCK_ID = 0x1EAD5C0E


def _v1(connection: Connection) -> None:
    schema.metadata.create_all(connection, tables=list(schema.V1_TABLES))


def _v2(connection: Connection) -> None:
    for index in schema.DASHBOARD_INDEXES:     # a new store has them from step 1
        index.create(connection, checkfirst=True)


def _v3(connection: Connection) -> None:
    from leadscore.store.lifecycle import LIFECYCLE_TABLES

    schema.metadata.create_all(connection, tables=list(LIFECYCLE_TABLES))


def _v4(connection: Connection) -> None:
    from leadscore.store.accounts import ACCOUNT_TABLES, backfill

    schema.metadata.create_all(connection, tables=list(ACCOUNT_TABLES))
    backfill(connection)     # links of the leads already stored; scores: `Service.open`


def _v5(connection: Connection) -> None:
    # (model, score) is a prefix of ix_scores_model_score_lead (model, score, lead_id): every
    # score upsert maintained both for nothing.
    connection.exec_driver_sql("DROP INDEX IF EXISTS ix_scores_model_score")


def _v6(connection: Connection) -> None:
    from sqlalchemy import update

    from leadscore.store.audit import AUDIT_TABLES
    from leadscore.store.sales import SALES_TABLES

    schema.metadata.create_all(connection, tables=[*SALES_TABLES, *AUDIT_TABLES])
    # Sales' stages entered the rank order after `mql` (3): a saved `Lifecycle Stage Set`
    # rank of sql (4) and above moves up by the three new stages.
    rows = connection.execute(select(schema.lead_state.c.lead_id, schema.lead_state.c.model,
                                     schema.lead_state.c.state)).all()
    for lead_id, model, state in rows:
        stage_set = (state or {}).get("stage_set")
        if stage_set and int(stage_set[1]) >= 4:
            state = {**state, "stage_set": [stage_set[0], int(stage_set[1]) + 3]}
            connection.execute(update(schema.lead_state).where(
                schema.lead_state.c.lead_id == lead_id, schema.lead_state.c.model == model
            ).values(state=state))


def _v7(connection: Connection) -> None:
    from sqlalchemy import inspect

    from leadscore.store.lifecycle import email_sends
    from leadscore.store.suppressions import SUPPRESSION_TABLES

    schema.metadata.create_all(connection, tables=list(SUPPRESSION_TABLES))
    if "address_hash" not in {c["name"] for c in inspect(connection).get_columns(
            "email_sends")}:      # a store made at version 7 or later has it from step 3
        connection.exec_driver_sql("ALTER TABLE email_sends ADD COLUMN address_hash "
                                   "VARCHAR(64)")
    for index in email_sends.indexes:
        index.create(connection, checkfirst=True)


# Ids may be 512 characters (`ingest.validate.MAX_ID_LENGTH`); keys built from them are longer.
_WIDENED = (("outbox", "id"), ("enrolments", "id"), ("program_journeys", "key"),
            ("program_journeys", "enrolment_id"), ("program_actions", "id"),
            ("email_sends", "id"))
# JSON columns a store written before non-finite numbers were refused may hold `Infinity` in.
_REPAIRED = (("leads", "id", "traits"), ("accounts", "id", "traits"))


def _v8(connection: Connection) -> None:
    from leadscore.store.sessions import SESSION_TABLES

    schema.metadata.create_all(connection, tables=list(SESSION_TABLES))
    if connection.dialect.name == "postgresql":
        for table, column in _WIDENED:
            connection.exec_driver_sql(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE text")
        return
    for table, key, column in _REPAIRED:     # SQLite's JSON functions refuse `Infinity`
        rows = connection.exec_driver_sql(
            f"SELECT {key}, {column} FROM {table} WHERE NOT json_valid({column})").all()
        for row_key, text in rows:
            try:
                value = finite(json.loads(text))
            except ValueError:
                continue
            connection.exec_driver_sql(f"UPDATE {table} SET {column} = ? WHERE {key} = ?",
                                       (json.dumps(value), row_key))


def _v9(connection: Connection) -> None:
    # A program's handoff id is its journey key, which holds the lead id (up to 512 characters).
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("ALTER TABLE sales_assignments ALTER COLUMN handoff_id "
                                   "TYPE text")


def _v10(connection: Connection) -> None:
    from sqlalchemy import inspect

    # A store made at version 10 or later has the column from step 1.
    if "filtered" not in {c["name"] for c in inspect(connection).get_columns("events")}:
        connection.exec_driver_sql("ALTER TABLE events ADD COLUMN filtered TEXT")
    schema.EVENTS_FILTERED.create(connection, checkfirst=True)


def finite(value: Any) -> Any:
    """`value` with every non-finite number (Infinity, NaN) replaced by null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "leads, identities, accounts, events, lead_state, scores, models, outbox", _v1),
    (2, "dashboard indexes: scores by model, score, lead; lead_state by model, latest event; "
        "outbox by creation", _v2),
    (3, "segments and programs: memberships, history, enrolments, journeys, actions", _v3),
    (4, "accounts: lead links, account domains, account scores", _v4),
    (5, "scores: drop ix_scores_model_score, a prefix of ix_scores_model_score_lead", _v5),
    (6, "sales: routing, assignments, teams, capacity, adjustments, audit log; stage ranks "
        "after mql moved up by three (recycled, rejected, sal)", _v6),
    (7, "e-mail: suppressions and opt-ins by address hash; e-mails sent by address", _v7),
    (8, "ids as text on PostgreSQL (outbox, enrolments, journeys, actions, e-mail sends); "
        "store settings and dashboard sessions; Infinity in stored traits as null", _v8),
    (9, "sales assignments: handoff ids as text on PostgreSQL (a program's holds the lead id)",
     _v9),
    (10, "events: the filter that kept an event out of scoring (bots, internal traffic, link "
         "scanners), with an index of the filtered ones", _v10),
]
LATEST = MIGRATIONS[-1][0]


def current_version(connection: Connection) -> int:
    if not connection.dialect.has_table(connection, "schema_version"):
        return 0
    return int(connection.execute(select(func.max(schema.schema_version.c.version)))
               .scalar() or 0)


def migrate(db: Database) -> int:
    """Bring the store to the latest schema version; return it."""
    def work(connection: Connection) -> int:
        if db.dialect == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_ID})")
        version = current_version(connection)
        if version > LATEST:
            raise StoreError(f"the store has schema version {version}, newer than this "
                             f"leadscore knows ({LATEST}): upgrade leadscore")
        for number, description, step in MIGRATIONS:
            if number > version:
                step(connection)
                connection.execute(schema.schema_version.insert().values(
                    version=number, description=description, applied_at=now_us()))
        return LATEST

    return db.write(work)
