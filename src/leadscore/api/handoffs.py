"""Handoffs in the outbox: their delivery status, last error, and a retry action."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Security

from leadscore.api.auth import admin_scheme, require_admin
from leadscore.api.errors import ERROR_RESPONSES, MAX_OFFSET

router = APIRouter(prefix="/api/handoffs", tags=["handoffs"], responses=ERROR_RESPONSES,
                   dependencies=[Security(admin_scheme), Depends(require_admin)])


@router.get("", summary="Handoffs with their delivery status, attempts and last error")
def list_handoffs(
    request: Request,
    status: Literal["pending", "delivered", "failed", "dead"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, Any]:
    found = request.app.state.service.handoffs(status=status, limit=limit, offset=offset)
    rows, total = found if isinstance(found, tuple) else (found, None)
    return {"handoffs": [_plain(r) for r in rows], "total": total, "limit": limit,
            "offset": offset}


@router.post("/{handoff_id}/retry", summary="Deliver a handoff again now")
def retry(request: Request, handoff_id: str) -> dict[str, Any]:
    request.app.state.service.retry(handoff_id)
    wake = getattr(request.app.state, "wake_dispatcher", None)
    if wake is not None:
        wake()
    return {"ok": True, "id": handoff_id, "status": "pending"}


def _plain(row: Any) -> Any:
    if isinstance(row, dict):
        return row
    as_dict = getattr(row, "_asdict", None) or getattr(row, "model_dump", None)
    if as_dict is not None:
        return as_dict()
    from dataclasses import asdict, is_dataclass

    return asdict(row) if is_dataclass(row) and not isinstance(row, type) else row
