"""The API fixtures (a client on SQLite and PostgreSQL, the write key, the admin token)."""

from tests.api.conftest import admin, client, settings, writer

__all__ = ["admin", "client", "settings", "writer"]
