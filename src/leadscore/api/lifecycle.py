"""Segments, programs and the links in program e-mails.

`/api/segments…` and `/api/programs…` (admin): segment sizes, members (paginated, or CSV),
history and sizes over time; program funnels, journeys and the e-mail outbox. `/t/…` (public,
signed tokens): the open pixel, tracked links and unsubscribe, each arriving as an event
(`Email Opened`, `Email Link Clicked` with the link's `topic`, `Unsubscribed`) ingested and
scored like any other.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Security
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from leadscore.api.auth import admin_scheme, require_admin
from leadscore.api.errors import ERROR_RESPONSES
from leadscore.csvtext import csv_text
from leadscore.programs.links import BadToken, read_token
from leadscore.programs.live import Lifecycle, open_lifecycle
from leadscore.programs.scheduler import funnel, journey_rows, outbox_view, unsubscribe
from leadscore.segments import live as segment_store
from leadscore.segments.members import MEMBER_SCORE_FIELDS, member_details, member_fields
from leadscore.timeutil import iso, now_us

router = APIRouter(prefix="/api", tags=["segments and programs"], responses=ERROR_RESPONSES,
                   dependencies=[Security(admin_scheme), Depends(require_admin)])
tracking = APIRouter(prefix="/t", tags=["e-mail tracking"], include_in_schema=True)
PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c0000000001"
                      "0001000002024401003b")


def lifecycle(request: Request) -> Lifecycle:
    found: Lifecycle | None = getattr(request.app.state, "lifecycle", None)
    if found is None:
        found = request.app.state.lifecycle = open_lifecycle(request.app.state.service,
                                                             request.app.state.settings)
    return found


def _segment(request: Request, name: str) -> Any:
    for segment in lifecycle(request).segments:
        if segment.name == name:
            return segment
    raise HTTPException(404, f"no segment {name!r}")


@router.get("/segments", summary="Segments with their current size")
def list_segments(request: Request) -> dict[str, Any]:
    service = request.app.state.service
    with service.db.read() as connection:
        return {"segments": segment_store.listing(connection, lifecycle(request).segments)}


@router.get("/segments/{name}/members", summary="Members of a segment (paginated; CSV with "
                                                "format=csv)", response_model=None)
def segment_members(request: Request, name: str,
                    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
                    offset: Annotated[int, Query(ge=0)] = 0,
                    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
                    fields: Annotated[str | None, Query(
                        description="Comma-separated columns to add per member: `traits.<x>`, "
                                    "`account.<x>`, `account_id`, or a score column ("
                                    + ", ".join(MEMBER_SCORE_FIELDS) + ") of `model`")] = None,
                    model: Annotated[str | None, Query(
                        description="The model whose scores `fields` reads (default: the "
                                    "segment's model)")] = None,
                    ) -> dict[str, Any] | Response:
    segment = _segment(request, name)
    try:
        wanted = member_fields(fields)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    scored_by = model or segment.model
    if scored_by is None and any(f in MEMBER_SCORE_FIELDS for f in wanted):
        asked = ", ".join(f for f in wanted if f in MEMBER_SCORE_FIELDS)
        raise HTTPException(422, f"fields: {asked} need a model: the segment names none, "
                                 "so pass model=…")
    service = request.app.state.service
    with service.db.read() as connection:
        if scored_by is not None and any(f in MEMBER_SCORE_FIELDS for f in wanted) and \
                scored_by not in {m.name for m in service.active_models(connection)}:
            raise HTTPException(422, f"model: no active model {scored_by!r}")
        rows, total = segment_store.members(connection, name,
                                            None if format == "csv" else limit,
                                            0 if format == "csv" else offset)
        details = member_details(connection, [r["lead_id"] for r in rows], wanted, scored_by)
    if format == "csv":
        return Response(csv_text(["lead_id", "segment", "entered_at", *wanted], (
            [row["lead_id"], name, iso(row["entered_at"]),
             *(details[row["lead_id"]].get(f) for f in wanted)] for row in rows)),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    return {"segment": name, "total": total, "limit": limit, "offset": offset,
            "members": [{"lead_id": r["lead_id"], "entered_at": iso(r["entered_at"]),
                         **details[r["lead_id"]]} for r in rows]}


@router.get("/segments/{name}/history", summary="Entries and exits, newest first")
def segment_history(request: Request, name: str, lead_id: str | None = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                    offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
    _segment(request, name)
    with request.app.state.service.db.read() as connection:
        rows = segment_store.history(connection, name, lead_id, limit, offset)
    return {"segment": name, "history": [
        {"lead_id": r["lead_id"], "entered_at": iso(r["entered_at"]),
         "left_at": iso(r["left_at"]) if r["left_at"] is not None else None} for r in rows]}


@router.get("/segments/{name}/sizes", summary="The segment's size over time (hourly)")
def segment_sizes(request: Request, name: str) -> dict[str, Any]:
    _segment(request, name)
    with request.app.state.service.db.read() as connection:
        rows = segment_store.sizes(connection, name)
    return {"segment": name, "sizes": [{"at": iso(r["at"]), "size": r["size"]} for r in rows]}


@router.get("/programs", summary="Programs with their funnel")
def list_programs(request: Request) -> dict[str, Any]:
    with request.app.state.service.db.read() as connection:
        return {"programs": [funnel(connection, p) for p in lifecycle(request).programs]}


@router.get("/programs/{name}/journeys", summary="Steps executed, oldest first")
def program_journeys(request: Request, name: str, lead_id: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
                     offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
    with request.app.state.service.db.read() as connection:
        return {"program": name, "journeys": journey_rows(connection, name, lead_id, limit,
                                                          offset)}


@router.get("/emails", summary="Program e-mails (the outbox), newest first")
def emails(request: Request, status: str | None = None,
           limit: Annotated[int, Query(ge=1, le=1000)] = 50,
           offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
    with request.app.state.service.db.read() as connection:
        return {"emails": outbox_view(connection, status, limit, offset)}


def _token(request: Request, token: str) -> dict[str, Any]:
    try:
        return read_token(token, lifecycle(request).secret)
    except BadToken:
        raise HTTPException(404, "unknown link") from None


def _track(request: Request, data: dict[str, Any], event: str, **properties: Any) -> None:
    request.app.state.service.ingest([{
        "type": "track", "userId": data["l"], "event": event,
        "messageId": f"{event}:{data['e']}:{uuid.uuid4().hex}",
        "properties": {"email_id": data["e"], "program": data.get("p"), **properties}}])


@tracking.get("/o/{token}.gif", summary="Open pixel: records `Email Opened`")
def opened(request: Request, token: str) -> Response:
    data = _token(request, token)
    _track(request, data, "Email Opened")
    return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})


@tracking.get("/c/{token}", summary="Tracked link: records `Email Link Clicked` (with the "
                                    "link's topic) and redirects")
def clicked(request: Request, token: str) -> RedirectResponse:
    data = _token(request, token)
    url = str(data.get("u") or "/")
    if not url.startswith(("http://", "https://")):
        raise HTTPException(404, "unknown link")
    _track(request, data, "Email Link Clicked", topic=data.get("t"), url=url)
    return RedirectResponse(url, status_code=302)


@tracking.post("/u/{token}", summary="One-click unsubscribe (RFC 8058)")
def unsubscribed_one_click(request: Request, token: str) -> HTMLResponse:
    return unsubscribed(request, token)


@tracking.get("/u/{token}", summary="Unsubscribe: records `Unsubscribed`; no program e-mails "
                                    "again")
def unsubscribed(request: Request, token: str) -> HTMLResponse:
    data = _token(request, token)
    unsubscribe(request.app.state.service, data["l"], f"email {data['e']}", now_us())
    _track(request, data, "Unsubscribed")
    return HTMLResponse("<!doctype html><title>Unsubscribed</title>"
                        "<p>You are unsubscribed and will receive no more e-mails.</p>")
