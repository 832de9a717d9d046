"""Leads and their current scores (decay applied at read time)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Security
from fastapi.responses import StreamingResponse

from leadscore.api.auth import admin_scheme, require_admin, require_sales_or_admin, sales_scheme
from leadscore.api.errors import ERROR_RESPONSES, MAX_OFFSET, ApiError
from leadscore.model.schema import GRADE_LETTERS, STAGES
from leadscore.sales.export import leads_csv

# The sales key reads leads too (DESIGN §6) — and nothing else: erasing and exporting a
# person need the admin token (`privacy`).
router = APIRouter(prefix="/api/leads", tags=["leads"], responses=ERROR_RESPONSES,
                   dependencies=[Security(admin_scheme), Security(sales_scheme),
                                 Depends(require_sales_or_admin)])
privacy = APIRouter(prefix="/api/leads", tags=["leads"], responses=ERROR_RESPONSES,
                    dependencies=[Security(admin_scheme), Depends(require_admin)])

GRADES = (*GRADE_LETTERS, "F")
TEMPERATURES = ("hot", "warm", "cold", "dead")


def _known(name: str, given: list[str] | None, allowed: Sequence[str]) -> None:
    """422 naming the allowed values when a filter asks for one that cannot exist (an empty
    list would read as "no such leads")."""
    unknown = [value for value in given or () if value not in allowed]
    if unknown:
        choices = ", ".join(allowed) or "(none)"
        raise ApiError(422, f"query parameter {name!r}: unknown value {unknown[0]!r}; "
                       f"expected one of {choices}",
                       [{"field": name, "in": "query", "value": unknown[0],
                         "message": f"expected one of {choices}", "allowed": list(allowed)}])


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
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    owner: Annotated[list[str] | None, Query(description="the salesperson a lead is "
                                                         "assigned to; repeatable")] = None,
    format: Annotated[Literal["json", "csv"], Query(
        description="csv: every matching lead (no paging) with scores, stage, owner and the "
                    "top reasons")] = "json",
) -> Any:
    service = request.app.state.service
    for name, given, allowed in (("grade", grade, GRADES), ("temperature", temperature,
                                                             TEMPERATURES),
                                 ("stage", stage, STAGES)):
        _known(name, given, allowed)
    if model is not None:
        _known("model", [model], sorted(m["name"] for m in service.models()))
    if format == "csv":
        filters = {"model": model, "grade": grade, "temperature": temperature,
                   "stage": stage, "min_score": min_score, "disqualified": disqualified,
                   "q": q, "sort": sort, "descending": descending, "owner": owner}
        return StreamingResponse(leads_csv(service.db, filters),
                                 media_type="text/csv", headers={
                                     "Content-Disposition": 'attachment; filename="leads.csv"'})
    rows, total = service.list_leads(
        model=model, grade=grade, temperature=temperature, stage=stage, min_score=min_score,
        disqualified=disqualified, q=q, sort=sort, descending=descending, limit=limit,
        offset=offset, owner=owner)
    return {"leads": rows, "total": total, "limit": limit, "offset": offset}


@privacy.delete("/{lead_id}", summary="Erase a person (GDPR art. 17): the lead, every lead "
                                     "merged into it, their events and every row about them")
def forget_lead(request: Request, lead_id: str) -> dict[str, Any]:
    """One transaction. Each e-mail address of the person is kept only as a hashed
    suppression record, so no program e-mails them again."""
    erased = request.app.state.service.forget(lead_id)
    return {"ok": True, "lead_id": erased.lead_id, "leads": erased.lead_ids,
            "rows": erased.rows, "suppressed": erased.suppressed}


@privacy.get("/{lead_id}/export", summary="Everything stored of a person (GDPR art. 15)")
def export_lead(request: Request, lead_id: str) -> dict[str, Any]:
    exported: dict[str, Any] = request.app.state.service.export_lead(lead_id)
    return exported
