"""Sales' routes (issue #18): feedback and adjustments on a lead, the routing file, the audit
log, open handoffs with their SLAs, and the feedback export.

Feedback takes the admin token or the sales key (which can also read leads, nothing else);
everything else here is the admin's."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Security
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from leadscore.api.auth import (
    admin_scheme,
    require_admin,
    require_sales_or_admin,
    sales_scheme,
)
from leadscore.api.body import MESSAGE_LIMIT, MODEL_LIMIT, read_bytes, read_json
from leadscore.api.errors import ERROR_RESPONSES, ApiError, problem_dict
from leadscore.errors import ModelError
from leadscore.sales.desk import AdjustmentError
from leadscore.sales.export import feedback_csv, feedback_rows
from leadscore.sales.feedback import FeedbackError
from leadscore.sales.sla import open_handoffs

sales = APIRouter(tags=["sales"], responses=ERROR_RESPONSES,
                  dependencies=[Security(admin_scheme), Security(sales_scheme)])
admin = APIRouter(tags=["sales"], responses=ERROR_RESPONSES,
                  dependencies=[Security(admin_scheme), Depends(require_admin)])

_FEEDBACK_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"type": "object", "required": ["status"], "properties": {
        "status": {"type": "string", "enum": ["accepted", "qualified", "rejected", "recycled",
                                              "opportunity", "won", "lost"]},
        "reason": {"type": "string", "description": "a configured reason code (needed for "
                                                    "rejected)"},
        "by": {"type": "string", "description": "who gives the verdict"}}}}}}}
_ADJUSTMENT_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"type": "object", "required": ["points", "reason"], "properties": {
        "points": {"type": "number"}, "reason": {"type": "string"},
        "expires_at": {"type": "string", "format": "date-time"},
        "model": {"type": "string", "description": "one model (default: every model)"},
        "by": {"type": "string"}}}}}}}
_YAML_BODY = {"requestBody": {"required": True, "content": {
    "application/yaml": {"schema": {"type": "string"}},
    "text/plain": {"schema": {"type": "string"}}}}}


@sales.post("/api/leads/{lead_id}/feedback", openapi_extra=_FEEDBACK_BODY,
            summary="Sales' verdict on a lead: accepted, rejected (with a reason), recycled, "
                    "opportunity, won, lost — the stage moves; audited")
async def give_feedback(request: Request, lead_id: str,
                        who: Annotated[str, Depends(require_sales_or_admin)]) -> dict[str, Any]:
    body = await read_json(request, MESSAGE_LIMIT, "feedback")
    try:
        found: dict[str, Any] = await run_in_threadpool(
            request.app.state.service.sales.feedback, lead_id, body, actor=who)
    except FeedbackError as exc:
        raise ApiError(400, str(exc), [{"field": exc.field, "message": str(exc)}]) from None
    return found


@admin.post("/api/leads/{lead_id}/adjustments", openapi_extra=_ADJUSTMENT_BODY,
            status_code=201, summary="A manual, audited change of the lead's points with a "
                                     "reason and an optional expiry")
async def add_adjustment(request: Request, lead_id: str) -> dict[str, Any]:
    body = await read_json(request, MESSAGE_LIMIT, "adjustment")
    try:
        found: dict[str, Any] = await run_in_threadpool(
            request.app.state.service.sales.adjust, lead_id, body, actor="admin")
    except (AdjustmentError, FeedbackError) as exc:
        raise ApiError(400, str(exc), [{"field": exc.field, "message": str(exc)}]) from None
    return found


@admin.get("/api/leads/{lead_id}/adjustments", summary="A lead's manual adjustments")
def list_adjustments(request: Request, lead_id: str) -> dict[str, Any]:
    return {"adjustments": request.app.state.service.sales.adjustments(lead_id)}


@admin.get("/api/audit", summary="The audit log, newest first: adjustments, feedback, model "
                                 "uploads, setting changes — who and when")
def audit_log(request: Request, action: str | None = None, target: str | None = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100,
              offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
    rows, total = request.app.state.service.sales.audit(action=action, target=target,
                                                        limit=limit, offset=offset)
    return {"entries": rows, "total": total, "limit": limit, "offset": offset}


@admin.get("/api/routing", summary="The routing file (YAML) installed")
def get_routing(request: Request) -> dict[str, Any]:
    return {"routing": request.app.state.service.sales.routing_text()}


@admin.put("/api/routing", openapi_extra=_YAML_BODY,
           summary="Install a routing file (YAML: teams, rules, feedback reasons); validated "
                   "first, audited")
async def put_routing(request: Request) -> dict[str, Any]:
    data = await read_bytes(request, MODEL_LIMIT, "routing file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the routing file is not valid UTF-8 (offset {exc.start})"
                       ) from None
    try:
        changed = await run_in_threadpool(request.app.state.service.sales.put_routing, text)
    except ModelError as exc:
        raise ApiError(422, f"the routing file does not validate ({len(exc.problems)} "
                       "problem(s)); the installed one is unchanged",
                       [problem_dict(p) for p in exc.problems]) from None
    return {"ok": True, "changed": changed}


@admin.get("/api/feedback", summary="Sales' verdicts: lead_id, status, reason, at, owner — "
                                    "an outcomes file for evaluate and learn (format=csv)")
def export_feedback(request: Request, format: Literal["json", "csv"] = "json",
                    outcome: Annotated[Literal["won", "accepted"], Query(
                        description="what `converted` means: won, or accepted by sales")
                    ] = "won") -> Any:
    rows = feedback_rows(request.app.state.service.db, outcome)
    if format == "csv":
        return StreamingResponse(feedback_csv(rows), media_type="text/csv", headers={
            "Content-Disposition": 'attachment; filename="feedback.csv"'})
    return {"feedback": rows, "total": len(rows)}


@sales.get("/api/sales/handoffs", summary="Open handoffs by age, breached SLAs first, and the "
                                          "median time to accept per owner")
def sales_handoffs(request: Request, who: Annotated[str, Depends(require_sales_or_admin)],
                   owner: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = open_handoffs(request.app.state.service.db, owner=owner)
    return found
