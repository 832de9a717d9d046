"""The filters (#19): what keeps events out of scoring, and how many each kept out."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Security

from leadscore.api.auth import admin_scheme, require_admin
from leadscore.api.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/filters", tags=["filters"], responses=ERROR_RESPONSES,
                   dependencies=[Security(admin_scheme), Depends(require_admin)])


@router.get("", summary="The filters in force (bots, internal traffic, link scanners) and "
                        "how many stored events each kept out of scoring")
def filters(request: Request) -> dict[str, Any]:
    service = request.app.state.service
    return {"filters": service.filters.to_json(), "filtered": service.filtered_counts()}
