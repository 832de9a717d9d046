"""The store: leads, identities, accounts, the event log, engine state, scores, model versions
and the outbox, on SQLite (default) or PostgreSQL, through SQLAlchemy Core."""

from leadscore.store.database import Database, NotFound, StoreError, normalize_url
from leadscore.store.migrate import LATEST, migrate
from leadscore.store.outbox import OutboxItem

__all__ = ["LATEST", "Database", "NotFound", "OutboxItem", "StoreError", "migrate",
           "normalize_url"]
