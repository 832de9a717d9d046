"""Leads and their current scores (decay applied at read time)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Security

from leadscore.api.auth import admin_scheme, require_admin
from leadscore.api.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/leads", tags=["leads"], responses=ERROR_RESPONSES,
                   dependencies=[Security(admin_scheme), Depends(require_admin)])

SORTS = Literal["score", "fit", "engagement", "grade", "temperature", "stage", "lead_id",
                "as_of", "updated_at"]


@router.get("/{lead_id}", summary="One lead: score, fit, engagement, grade, temperature, "
                                  "stage, reasons, traits, account")
def get_lead(request: Request, lead_id: str,
             model: Annotated[str | None, Query(description="model name; default: the lead's "
                                                            "first model")] = None
             ) -> dict[str, Any]:
    lead: dict[str, Any] = request.app.state.service.get_lead(lead_id, model=model)
    return lead


@router.get("", summary="Leads, filtered, sorted and paginated (with the total)")
def list_leads(
    request: Request,
    model: str | None = None,
    grade: Annotated[list[str] | None, Query(description="A–F; repeat for several")] = None,
    temperature: Annotated[list[str] | None,
                           Query(description="hot, warm, cold, dead; repeatable")] = None,
    stage: Annotated[list[str] | None, Query(description="lifecycle stage; repeatable")] = None,
    min_score: float | None = None,
    disqualified: bool | None = None,
    q: Annotated[str | None, Query(description="text search in id and traits")] = None,
    sort: SORTS = "score",
    descending: bool = True,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    rows, total = request.app.state.service.list_leads(
        model=model, grade=grade, temperature=temperature, stage=stage, min_score=min_score,
        disqualified=disqualified, q=q, sort=sort, descending=descending, limit=limit,
        offset=offset)
    return {"leads": rows, "total": total, "limit": limit, "offset": offset}
