"""Who may enter a program, and on which events.

- A lead enters only if the program's model applies to it (`applies_to`): a consumer
  newsletter is not for business leads, in the service as in `programs simulate`.
- Only news enrols: an event imported as history (`leadscore import` marks its messages with
  `context.leadscore.history`), or older than `enrol_max_age_hours` when it arrived, updates
  scores but enrols no one — so importing last spring's subscriptions sends no welcome e-mail
  now. Such events are counted (`HISTORY_COUNTER` in `lifecycle_cursor`) and shown.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select

from leadscore.events import Lead
from leadscore.model.compiled import compile_model
from leadscore.model.schema import Model
from leadscore.store import leads as lead_store
from leadscore.store.database import Database
from leadscore.store.lifecycle import lifecycle_cursor

HISTORY_COUNTER = "history events (no enrolment)"


class Applies:
    """`applies_to` of programs' models, for leads read from the store (one transaction)."""

    def __init__(self, models: Sequence[Model]):
        self.models = {m.name: compile_model(m) for m in models}
        self.leads: dict[str, Lead] = {}

    def __call__(self, connection: Connection, model: str | None, lead_id: str) -> bool:
        compiled = self.models.get(model) if model is not None else None
        if compiled is None or compiled.applies_to is None:
            return True           # no model named, or one for everyone
        lead = self.leads.get(lead_id)
        if lead is None:
            row = lead_store.load(connection, lead_id)
            lead = self.leads[lead_id] = Lead(lead_id, dict(row.traits), dict(row.account)) \
                if row is not None else Lead(lead_id)
        return compiled.applies(lead)


def count_history(db: Database, connection: Connection, events: int) -> None:
    """Add `events` to the count of history events that enrolled no one."""
    current = connection.execute(select(lifecycle_cursor.c.position).where(
        lifecycle_cursor.c.name == HISTORY_COUNTER)).scalar() or 0
    db.upsert(connection, lifecycle_cursor, {"name": HISTORY_COUNTER,
                                             "position": int(current) + events}, ("name",))


def history_count(connection: Connection) -> int:
    """History events that enrolled no one, since the store began."""
    return int(connection.execute(select(lifecycle_cursor.c.position).where(
        lifecycle_cursor.c.name == HISTORY_COUNTER)).scalar() or 0)
