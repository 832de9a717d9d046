"""The dashboard's sales pages: a lead's owner with feedback buttons and adjustments, and
`/dashboard/sales` — open handoffs by age (breached SLAs first), the median time to accept per
owner, and what sales' verdicts say about the rules."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from leadscore.dashboard import session
from leadscore.dashboard.routes import PREFIX, LoginRequired, render
from leadscore.dashboard.sales_views import owner_choices
from leadscore.sales.desk import AdjustmentError
from leadscore.sales.feedback import FeedbackError
from leadscore.sales.insights import insights
from leadscore.sales.sla import open_handoffs
from leadscore.store.database import NotFound

router = APIRouter(include_in_schema=False)


async def _posted(request: Request) -> dict[str, str]:
    if not session.signed_in(request):
        raise LoginRequired()
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _back(lead_id: str, note: str) -> Response:
    return RedirectResponse(f"{PREFIX}/leads/{quote(lead_id, safe='')}?note={quote(note)}",
                            status_code=303)


@router.post("/leads/{lead_id}/feedback")
async def feedback(request: Request, lead_id: str) -> Response:
    form = await _posted(request)
    if not session.csrf_ok(request, form.get("csrf")):
        return render(request, "not_found.html", 403, page="leads",
                      message="The form expired: reload the page and try again.")
    body = {k: form[k] for k in ("status", "reason", "by") if form.get(k)}
    try:
        request.app.state.service.sales.feedback(lead_id, body, actor="dashboard")
    except FeedbackError as exc:
        return _back(lead_id, f"Not saved: {exc}")
    except NotFound as exc:
        return render(request, "not_found.html", 404, page="leads", message=str(exc))
    return _back(lead_id, f"Saved: {body['status']}")


@router.post("/leads/{lead_id}/adjustments")
async def adjustment(request: Request, lead_id: str) -> Response:
    form = await _posted(request)
    if not session.csrf_ok(request, form.get("csrf")):
        return render(request, "not_found.html", 403, page="leads",
                      message="The form expired: reload the page and try again.")
    body: dict[str, Any] = {k: form[k] for k in ("reason", "by", "expires_at")
                            if form.get(k)}
    try:
        body["points"] = float(form.get("points", ""))
    except ValueError:
        return _back(lead_id, "Not saved: points is a number")
    try:
        request.app.state.service.sales.adjust(lead_id, body, actor="dashboard")
    except AdjustmentError as exc:
        return _back(lead_id, f"Not saved: {exc}")
    except NotFound as exc:
        return render(request, "not_found.html", 404, page="leads", message=str(exc))
    return _back(lead_id, f"Saved: {body['points']:+g} points")


@router.get("/sales")
def sales_page(request: Request, owner: str = "", model: str = "") -> HTMLResponse:
    if not session.signed_in(request):
        raise LoginRequired()
    service = request.app.state.service
    found = open_handoffs(service.db, owner=owner or None)
    return render(request, "sales.html", page="sales", found=found, owner=owner,
                  owners=owner_choices(service), insight=insights(service.db, model or None))
