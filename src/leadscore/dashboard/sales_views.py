"""What the dashboard's pages show of sales (no routes here: `routes` and `sales` read it)."""

from __future__ import annotations

from typing import Any

from leadscore.sales.feedback import STATUSES
from leadscore.store import sales as store


def lead_sales(service: Any, lead_id: str) -> dict[str, Any]:
    """What the lead page shows of sales: the current assignment, the reason codes, the
    statuses, the lead's adjustments and the verdicts given (from the audit log)."""
    with service.db.read() as connection:
        assignment = store.owner_of(connection, lead_id)
    entries, _ = service.sales.audit(target=lead_id, limit=50)
    return {"assignment": assignment, "reasons": service.sales.routing().reasons,
            "statuses": STATUSES, "adjustments": service.sales.adjustments(lead_id),
            "history": [e for e in entries if e["action"] in ("feedback", "adjustment")]}


def owner_choices(service: Any) -> list[str]:
    with service.db.read() as connection:
        return sorted({r["owner"] for r in store.all_assignments(connection) if r["owner"]})
