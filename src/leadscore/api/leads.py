"""Leads and their current scores (decay applied at read time)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Security
from fastapi.responses import StreamingResponse

from leadscore.api.auth import admin_scheme, require_sales_or_admin, sales_scheme
from leadscore.api.errors import ERROR_RESPONSES
from leadscore.sales.export import leads_csv

# The sales key reads leads too (DESIGN §6).
router = APIRouter(prefix="/api/leads", tags=["leads"], responses=ERROR_RESPONSES,
                   dependencies=[Security(admin_scheme), Security(sales_scheme),
                                 Depends(require_sales_or_admin)])

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
    owner: Annotated[list[str] | None, Query(description="the salesperson a lead is "
                                                         "assigned to; repeatable")] = None,
    format: Annotated[Literal["json", "csv"], Query(
        description="csv: every matching lead (no paging) with scores, stage, owner and the "
                    "top reasons")] = "json",
) -> Any:
    if format == "csv":
        filters = {"model": model, "grade": grade, "temperature": temperature,
                   "stage": stage, "min_score": min_score, "disqualified": disqualified,
                   "q": q, "sort": sort, "descending": descending, "owner": owner}
        return StreamingResponse(leads_csv(request.app.state.service.db, filters),
                                 media_type="text/csv", headers={
                                     "Content-Disposition": 'attachment; filename="leads.csv"'})
    rows, total = request.app.state.service.list_leads(
        model=model, grade=grade, temperature=temperature, stage=stage, min_score=min_score,
        disqualified=disqualified, q=q, sort=sort, descending=descending, limit=limit,
        offset=offset, owner=owner)
    return {"leads": rows, "total": total, "limit": limit, "offset": offset}
