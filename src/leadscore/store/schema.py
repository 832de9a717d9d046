"""The store's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Times are integers: microseconds since the epoch, UTC. JSON columns hold traits, messages,
engine state and reasons. These definitions are the latest schema; `store.migrate` holds the
steps that build it, version by version.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# µs since the epoch, UTC.
Micros = BigInteger
# An auto-incrementing 64-bit key (SQLite only auto-increments an INTEGER PRIMARY KEY).
Serial = BigInteger().with_variant(Integer(), "sqlite")

schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", Micros, nullable=False),
)

leads = Table(
    "leads", metadata,
    Column("id", Text, primary_key=True),
    Column("traits", JSON, nullable=False),
    Column("account_id", Text, index=True),
    Column("merged_into", Text, index=True),          # set when alias merged this lead away
    Column("created_at", Micros, nullable=False),
    Column("updated_at", Micros, nullable=False),
)

identities = Table(
    "identities", metadata,
    Column("kind", String(16), primary_key=True),     # user | anonymous
    Column("id", Text, primary_key=True),             # the userId / anonymousId as sent
    Column("lead_id", Text, nullable=False, index=True),
    Column("created_at", Micros, nullable=False),
)

accounts = Table(
    "accounts", metadata,
    Column("id", Text, primary_key=True),             # the groupId
    Column("traits", JSON, nullable=False),
    Column("created_at", Micros, nullable=False),
    Column("updated_at", Micros, nullable=False),
)

# The append-only log of every accepted message: the source of truth.
events = Table(
    "events", metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),
    Column("message_id", Text, nullable=False, unique=True),
    Column("type", String(16), nullable=False),
    Column("user_id", Text, index=True),
    Column("anonymous_id", Text, index=True),
    Column("event", Text),
    Column("path", Text),
    Column("timestamp", Micros, nullable=False),      # as scored (future times clamped)
    Column("received_at", Micros, nullable=False),
    Column("message", JSON, nullable=False),          # the message as sent
    # The filter that kept the event out of scoring (`leadscore.filters`), decided when it
    # arrived; NULL: scored. Added at schema version 10.
    Column("filtered", Text),
)

lead_state = Table(
    "lead_state", metadata,
    Column("lead_id", Text, primary_key=True),
    Column("model", Text, primary_key=True),
    Column("model_version", Integer, nullable=False),
    Column("latest", Micros),                         # the lead's latest event time
    Column("state", JSON, nullable=False),            # the incremental engine's ModelState
    Column("updated_at", Micros, nullable=False),
)

scores = Table(
    "scores", metadata,
    Column("lead_id", Text, primary_key=True),
    Column("model", Text, primary_key=True),
    Column("model_version", Integer, nullable=False),
    Column("fit", Double, nullable=False),
    Column("engagement", Double, nullable=False),
    Column("score", Double, nullable=False),
    Column("grade", String(2)),
    Column("temperature", String(8)),
    Column("stage", String(16), nullable=False),
    Column("mql", Boolean, nullable=False),
    Column("disqualified", Boolean, nullable=False),
    Column("disqualify_reason", Text),
    Column("purchases", Integer, nullable=False),
    Column("customer_since", Micros),
    Column("as_of", Micros, nullable=False),
    Column("reasons", JSON, nullable=False),
)

models = Table(
    "models", metadata,
    Column("name", Text, primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("yaml", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", Micros, nullable=False),
    Column("rescore_state", String(16), nullable=False),   # rescoring | ready
    Column("rescore_done", Integer, nullable=False),
    Column("rescore_total", Integer, nullable=False),
)

outbox = Table(
    "outbox", metadata,
    Column("id", Text, primary_key=True),             # the handoff's stable id
    Column("kind", String(32), nullable=False),       # handoff
    Column("lead_id", Text, nullable=False, index=True),
    Column("model", Text),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),     # pending | delivered | failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Micros),                # None: no automatic attempt
    Column("lease_until", Micros),                    # claimed by a dispatcher until then
    Column("last_error", Text),
    Column("created_at", Micros, nullable=False),
    Column("delivered_at", Micros),
    Index("ix_outbox_due", "status", "next_attempt_at"),
)

# Filtered events by filter (the dashboard's counts): only the filtered rows are indexed.
EVENTS_FILTERED = Index("ix_events_filtered", events.c.filtered,
                        sqlite_where=events.c.filtered.isnot(None),
                        postgresql_where=events.c.filtered.isnot(None))

V1_TABLES = (schema_version, leads, identities, accounts, events, lead_state, scores, models,
             outbox)

# The dashboard's keyset pagination (store/dashboard.py): the leads list by score and by last
# activity, each with the lead id as tie-breaker; the handoffs listing, newest first. The first
# also serves the listing by model and score (`ix_scores_model_score`, its prefix, was dropped
# at schema version 5: every score upsert paid for both).
DASHBOARD_INDEXES = (
    Index("ix_scores_model_score_lead", scores.c.model, scores.c.score, scores.c.lead_id),
    Index("ix_lead_state_model_latest", lead_state.c.model, lead_state.c.latest,
          lead_state.c.lead_id),
    Index("ix_outbox_created", outbox.c.created_at),
)
