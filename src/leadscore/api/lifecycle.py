"""Segments, programs and the links in program e-mails.

`/api/segments…` and `/api/programs…` (admin): segment sizes, members (paginated, or CSV),
history and sizes over time; program funnels, journeys and the e-mail outbox. `/t/…` (public,
signed tokens): the open pixel, tracked links and unsubscribe, each arriving as an event
(`Email Opened`, `Email Link Clicked` with the link's `topic`, `Unsubscribed`) ingested and
scored like any other.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Security
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from leadscore.addresses import check_address
from leadscore.api.auth import admin_scheme, require_admin
from leadscore.api.clients import client_address
from leadscore.api.errors import ERROR_RESPONSES, MAX_OFFSET
from leadscore.csvtext import csv_text
from leadscore.events import event_from_message
from leadscore.filters import SINCE_SENT, event_filter
from leadscore.programs.entry import history_count
from leadscore.programs.links import (
    BadToken,
    ExpiredToken,
    Purpose,
    made_at,
    read_token,
    token_digest,
)
from leadscore.programs.live import Lifecycle, open_lifecycle
from leadscore.programs.optouts import (
    confirm_by_link,
    resubscribe,
    suppress_address,
    unsubscribe_by_link,
)
from leadscore.programs.scheduler import (
    dead_actions,
    funnel,
    journey_rows,
    outbox_view,
    retry_action,
)
from leadscore.segments import live as segment_store
from leadscore.segments.members import MEMBER_SCORE_FIELDS, member_details, member_fields
from leadscore.timeutil import US_PER_DAY, US_PER_SECOND, iso, now_us

router = APIRouter(prefix="/api", tags=["segments and programs"], responses=ERROR_RESPONSES,
                   dependencies=[Security(admin_scheme), Depends(require_admin)])
tracking = APIRouter(prefix="/t", tags=["e-mail tracking"], include_in_schema=True)
OPTIN_CONFIRMED = "Email Opt-in Confirmed"
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
                    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
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
                    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> dict[str, Any]:
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
        return {"programs": [funnel(connection, p) for p in lifecycle(request).programs],
                "history_events": history_count(connection)}


@router.get("/programs/{name}/journeys", summary="Steps executed, oldest first")
def program_journeys(request: Request, name: str, lead_id: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
                     offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> dict[str, Any]:
    with request.app.state.service.db.read() as connection:
        return {"program": name, "journeys": journey_rows(connection, name, lead_id, limit,
                                                          offset)}


@router.get("/emails", summary="Program e-mails (the outbox), newest first")
def emails(request: Request, status: str | None = None,
           limit: Annotated[int, Query(ge=1, le=1000)] = 50,
           offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> dict[str, Any]:
    with request.app.state.service.db.read() as connection:
        return {"emails": outbox_view(connection, status, limit, offset)}


class SuppressBody(BaseModel):
    address: str = Field(max_length=320, description="the address to e-mail no more")


class ResubscribeBody(BaseModel):
    address: str | None = Field(None, max_length=320)
    lead_id: str | None = Field(None, max_length=512, description="lifts the lead's own "
                                "unsubscribe and its current address's suppression")
    force: bool = Field(False, description="also lift a `forgotten` suppression")


@router.get("/programs/actions/dead", summary="Dead letters: program actions (e-mail, "
                                              "webhook, event) no longer retried")
def dead_program_actions(request: Request,
                         limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    with request.app.state.service.db.read() as connection:
        return {"actions": dead_actions(connection, limit)}


@router.post("/programs/actions/{action_id}/retry", summary="Deliver a dead-letter program "
                                                          "action (e-mail, webhook) again")
def retry_program_action(request: Request, action_id: str) -> dict[str, Any]:
    if not retry_action(request.app.state.service, action_id):
        raise HTTPException(404, f"no dead or failed program action {action_id!r}")
    return {"ok": True, "id": action_id, "status": "pending"}


@router.post("/emails/suppressions", summary="Opt an address out of program e-mail")
def suppress_email(request: Request, body: SuppressBody) -> dict[str, Any]:
    address, problem = check_address(body.address)
    if address is None:
        raise HTTPException(422, f"address: {problem}")
    return {"address": address,
            "suppressed": suppress_address(request.app.state.service, address)}


@router.post("/emails/resubscribe", summary="Lift an opt-out: an address's suppression and a "
                                            "lead's unsubscribe (the way back)")
def resubscribe_email(request: Request, body: ResubscribeBody) -> dict[str, Any]:
    if body.address is None and body.lead_id is None:
        raise HTTPException(422, "give address or lead_id")
    address = None
    if body.address is not None:
        address, problem = check_address(body.address)
        if address is None:
            raise HTTPException(422, f"address: {problem}")
    return resubscribe(request.app.state.service, address=address, lead_id=body.lead_id,
                       force=body.force)


def _secret(request: Request) -> str | None:
    return lifecycle(request).secret


def _read(request: Request, token: str, purpose: Purpose) -> dict[str, Any]:
    """The token's data; 404 when it is forged, malformed or for another purpose (an
    ExpiredToken passes through: each route decides what an old link still does)."""
    try:
        return read_token(token, _secret(request) or "", purpose, now_us() / US_PER_SECOND)
    except ExpiredToken:
        raise
    except BadToken:
        raise HTTPException(404, "unknown link") from None


def _track(request: Request, data: dict[str, Any], event: str, message_id: str, *,
           followed: bool = False, **properties: Any) -> None:
    """The event a link raises. Its messageId names the token (and the day, for clicks and
    opens): replays of one link are stored once — a reload counts once.

    `followed`: a GET anyone may make (an open, a click), so it carries who made it
    (`context.userAgent`, `context.ip`); one a filter catches (a crawler, a mail gateway's
    link scanner: `leadscore.filters`) is stored, not scored, under a messageId of its own,
    so the person's own click that day still counts. An unsubscribe or a confirmation is a
    POST from the page's button, or from the mail client (RFC 8058): never filtered."""
    message: dict[str, Any] = {
        "type": "track", "userId": data["l"], "event": event, "messageId": message_id,
        "properties": {"email_id": data["e"], "program": data.get("p"), **properties}}
    service = request.app.state.service
    if followed:
        context = {"userAgent": request.headers.get("user-agent"),
                   "ip": client_address(request)}
        message["context"] = {k: v for k, v in context.items() if v and v != "unknown"}
        if event_filter(event_from_message({**message, "timestamp": now_us()}),
                        service.filters) is not None:
            message["messageId"] = f"{message_id}:filtered"
    service.ingest([message])


def _click(request: Request, token: str, data: dict[str, Any], url: str) -> None:
    """`Email Link Clicked`, with how long after its e-mail was made it came: a click
    within `link_scanner_seconds` is a scanner's (`filters.link_scanners`)."""
    made = made_at(data)
    since = {} if made is None else {
        SINCE_SENT: round(max(0.0, now_us() / US_PER_SECOND - made), 3)}
    _track(request, data, "Email Link Clicked", f"click:{token_digest(token)}:{_today()}",
           followed=True, topic=data.get("t"), url=url, **since)


def _today() -> int:
    return now_us() // US_PER_DAY


@tracking.get("/o/{token}.gif", summary="Open pixel: records `Email Opened` (once per token "
                                        "and day)")
def opened(request: Request, token: str) -> Response:
    try:
        data = _read(request, token, "open")
        _track(request, data, "Email Opened", f"open:{token_digest(token)}:{_today()}",
               followed=True)
    except ExpiredToken:
        pass                        # an old e-mail opened again: the pixel, nothing counted
    return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})


@tracking.get("/c/{token}", summary="Tracked link: records `Email Link Clicked` (with the "
                                    "link's topic; once per token and day) and redirects")
def clicked(request: Request, token: str) -> RedirectResponse:
    try:
        data, expired = _read(request, token, "click"), False
    except ExpiredToken as old:
        data, expired = old.data, True      # still signed: go there, count nothing
    url = str(data.get("u") or "/")
    if not url.startswith(("http://", "https://")):
        raise HTTPException(404, "unknown link")
    if not expired:
        _click(request, token, data, url)
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})


_PAGE = ("<!doctype html><html lang=en><meta charset=utf-8>"
         "<meta name=viewport content='width=device-width,initial-scale=1'>"
         "<meta name=robots content=noindex><title>{title}</title>"
         "<body style='font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto'>"
         "{body}</body></html>")
_EXPIRED = _PAGE.format(title="Link expired", body="<p>This link has expired. Reply to the "
                        "e-mail to be taken off the list.</p>")


def _unsubscribe_data(request: Request, token: str) -> dict[str, Any] | None:
    try:
        return _read(request, token, "unsubscribe")
    except ExpiredToken:
        return None


@tracking.get("/u/{token}", summary="Unsubscribe page: a button that confirms (a GET changes "
                                    "nothing: link scanners and image proxies fetch links)",
              response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: str) -> HTMLResponse:
    if _unsubscribe_data(request, token) is None:
        return HTMLResponse(_EXPIRED, 410)
    return HTMLResponse(_PAGE.format(
        title="Unsubscribe", body="<h1>Unsubscribe</h1><p>Stop receiving these e-mails?</p>"
        "<form method=post><input type=hidden name=List-Unsubscribe value=One-Click>"
        "<button type=submit>Unsubscribe</button></form>"),
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@tracking.post("/u/{token}", summary="Unsubscribe (RFC 8058 one-click, or the page's button): "
                                     "the address gets no program e-mail again; `Unsubscribed` "
                                     "is recorded once", response_class=HTMLResponse)
def unsubscribe_now(request: Request, token: str) -> HTMLResponse:
    data = _unsubscribe_data(request, token)
    if data is None:
        return HTMLResponse(_EXPIRED, 410)
    unsubscribe_by_link(request.app.state.service, data["l"], data["e"])
    _track(request, data, "Unsubscribed", f"unsubscribe:{token_digest(token)}")
    return HTMLResponse(_PAGE.format(
        title="Unsubscribed", body="<p>You are unsubscribed and will receive no more of "
        "these e-mails.</p>"), headers={"Cache-Control": "no-store"})


@tracking.get("/y/{token}", summary="Double opt-in page: a button that confirms (a GET "
                                    "changes nothing)", response_class=HTMLResponse)
def confirm_page(request: Request, token: str) -> HTMLResponse:
    try:
        _read(request, token, "confirm")
    except ExpiredToken:
        return HTMLResponse(_PAGE.format(title="Link expired", body="<p>This confirmation "
                                         "link has expired.</p>"), 410)
    return HTMLResponse(_PAGE.format(
        title="Confirm", body="<h1>Confirm your subscription</h1>"
        "<form method=post><button type=submit>Yes, send me these e-mails</button></form>"),
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@tracking.post("/y/{token}", summary="Double opt-in: the address confirms it wants program "
                                     "e-mail; `Email Opt-in Confirmed` is recorded once",
               response_class=HTMLResponse)
def confirm_now(request: Request, token: str) -> HTMLResponse:
    try:
        data = _read(request, token, "confirm")
    except ExpiredToken:
        return HTMLResponse(_PAGE.format(title="Link expired", body="<p>This confirmation "
                                         "link has expired.</p>"), 410)
    if not confirm_by_link(request.app.state.service, data["e"]):
        raise HTTPException(404, "unknown link")
    _track(request, data, OPTIN_CONFIRMED, f"confirm:{token_digest(token)}")
    return HTMLResponse(_PAGE.format(title="Confirmed", body="<p>Thank you: your "
                                     "subscription is confirmed.</p>"),
                        headers={"Cache-Control": "no-store"})
