"""The dashboard's pages under `/dashboard`, behind the admin login (a session cookie)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from leadscore import __version__
from leadscore.dashboard import accounts as account_views
from leadscore.dashboard import charts, sales_views, session, views
from leadscore.dashboard import lifecycle as lifecycle_views
from leadscore.dashboard.evaluation import Evaluations, available
from leadscore.ratelimit import Buckets, retry_after
from leadscore.sales.insights import insights
from leadscore.store import dashboard as queries
from leadscore.store.database import NotFound
from leadscore.timeutil import iso, now_us

HERE = Path(__file__).parent
PREFIX = "/dashboard"
env = Environment(loader=FileSystemLoader(HERE / "templates"),
                  autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
env.globals.update(charts=charts, prefix=PREFIX, version=__version__)
env.filters["when"] = lambda us: iso(us)[:16].replace("T", " ") if us else ""
env.filters["pts"] = lambda v: "" if v is None else f"{v:+.1f}"
env.filters["num"] = lambda v: "" if v is None else f"{v:.1f}"
env.filters["ago"] = lambda us: _ago(us)

FORM_LIMIT = 16 * 1024        # a login or settings form; more is refused (413) unread
router = APIRouter(include_in_schema=False)   # mounted at PREFIX by `install`


class LoginRequired(Exception):
    pass


def _ago(us: int | None) -> str:
    if not us:
        return ""
    seconds = max((now_us() - us) / 1e6, 0)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size:.0f} {unit} ago"
    return "just now"


def render(request: Request, name: str, code: int = 200, **context: Any) -> HTMLResponse:
    context.update(request=request, csrf=session.csrf_token(request),
                   signed_in=session.signed_in(request))
    return HTMLResponse(env.get_template(name).render(**context), status_code=code)


def _guard(request: Request) -> None:
    if not session.signed_in(request):
        raise LoginRequired()


def _service(request: Request) -> Any:
    return request.app.state.service


def _model(request: Request, name: str | None) -> tuple[views.ActiveModel | None,
                                                       dict[str, views.ActiveModel]]:
    models = views.active_models(_service(request))
    if name and name in models:
        return models[name], models
    return (next(iter(models.values())) if models else None), models


class FormTooLarge(Exception):
    pass


async def _form(request: Request, limit: int = FORM_LIMIT) -> dict[str, str]:
    """The fields of a form; FormTooLarge (413) past `limit` bytes, read no further."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise FormTooLarge()
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise FormTooLarge()
    body = data.decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


# ---- login


@router.get("/login")
def login_page(request: Request, next: str = PREFIX + "/") -> HTMLResponse:
    configured = request.app.state.settings.admin_token_sha256 is not None
    return render(request, "login.html", next=_safe_next(next), error=None,
                  configured=configured)


@router.post("/login")
async def login(request: Request) -> Response:
    """Sign in with the admin token. Bad attempts are limited per client address (429 with
    Retry-After once spent); nothing here blocks the event loop."""
    address = client_address(request)
    attempts: Buckets = request.app.state.login_attempts
    wait = attempts.wait(address)
    if wait:
        return HTMLResponse("Too many bad sign-ins from your address; try again in "
                            f"{retry_after(wait)} s.", status_code=429,
                            headers={"Retry-After": retry_after(wait)})
    form = await _form(request)
    settings = request.app.state.settings
    target = _safe_next(form.get("next", ""))
    if not settings.is_admin_token(form.get("token", "").strip()):
        attempts.take(address)
        await asyncio.sleep(0.2)     # slows one client's guessing; others are not held up
        return await run_in_threadpool(render, request, "login.html", 401, next=target,
                                       configured=True, error="That is not the admin token.")
    response = RedirectResponse(target, status_code=303)
    session.set_cookie(response, request, await run_in_threadpool(session.new_session, request))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session in the store (every worker and host), then drop the cookie."""
    await run_in_threadpool(session.end, request)
    response = RedirectResponse(PREFIX + "/login", status_code=303)
    session.clear_cookie(response, request)
    return response


def _safe_next(target: str) -> str:
    return target if target.startswith(PREFIX + "/") and "//" not in target[1:] \
        else PREFIX + "/"


# ---- leads


@router.get("/")
def leads_list(request: Request, model: str | None = None, q: str = "",
               sort: str = "score", dir: str = "desc", cursor: str | None = None,
               size: int = 50, segment: str = "") -> HTMLResponse:
    _guard(request)
    params = request.query_params
    active, models = _model(request, model)
    if active is None:
        return render(request, "empty.html", page="leads")
    disq = params.get("disqualified", "")
    f = queries.LeadFilter(
        model=active.name, grades=tuple(params.getlist("grade")),
        temperatures=tuple(params.getlist("temperature")),
        stages=tuple(params.getlist("stage")),
        disqualified={"yes": True, "no": False}.get(disq), q=q.strip()[:100],
        sort=sort if sort in queries.SORTS else "score", descending=dir != "asc",
        owners=tuple(o for o in params.getlist("owner") if o))
    size = size if size in queries.PAGE_SIZES else 50
    segments = [s.name for s in _lifecycle(request).segments]
    segment = segment if segment in segments else ""
    if segment:     # the members of a segment, by score
        f = replace(f, sort="score")
        page, stages = lifecycle_views.segment_leads_page(_service(request), f, segment, size,
                                                          cursor)
    else:
        page, stages = views.leads_page(_service(request), f, size, cursor)
    keep = [(k, v) for k, v in params.multi_items() if k != "cursor"]
    return render(request, "leads.html", page="leads", f=f, rows=page.rows, total=page.total,
                  cap=queries.COUNT_CAP, model=active, models=models, stages=stages,
                  grades=views.GRADES, temperatures=views.TEMPERATURES, disq=disq, size=size,
                  sizes=queries.PAGE_SIZES, segments=segments, segment=segment,
                  owners=sales_views.owner_choices(_service(request)),
                  filtered=_service(request).filtered_counts(),
                  next_url=_url("/", keep, cursor=page.next_cursor) if page.next_cursor
                  else None,
                  prev_url=_url("/", keep, cursor=page.prev_cursor) if page.prev_cursor
                  else None,
                  sort_url=lambda key: _url("/", [(k, v) for k, v in keep
                                                  if k not in ("sort", "dir")],
                                            sort=key, dir="asc" if f.sort == key
                                            and f.descending else "desc"))


def _url(path: str, items: list[tuple[str, str]], **extra: str | None) -> str:
    pairs = [(k, v) for k, v in items if k not in extra] + [
        (k, v) for k, v in extra.items() if v is not None]
    return PREFIX + path + ("?" + urlencode(pairs) if pairs else "")


@router.get("/sparklines")
def sparklines(request: Request, model: str, ids: str = "") -> JSONResponse:
    if not session.signed_in(request):
        return JSONResponse({"ok": False, "error": "sign in first", "errors": [],
                             "status": 401}, status_code=401)
    active, _ = _model(request, model)
    if active is None:
        return JSONResponse({})
    found = views.sparklines(_service(request), active, [i for i in ids.split(",") if i])
    return JSONResponse({lead: str(charts.sparkline(values)) for lead, values in found.items()})


# ---- a lead


@router.get("/leads/{lead_id}")
def lead_page(request: Request, lead_id: str, model: str | None = None) -> HTMLResponse:
    _guard(request)
    try:
        view = views.lead_view(_service(request), lead_id, model)
    except NotFound as exc:
        return render(request, "not_found.html", 404, page="leads", message=str(exc))
    return render(request, "lead.html", page="leads", v=view, lead=view.lead,
                  models=views.active_models(_service(request)),
                  interests=lifecycle_views.lead_interests(_service(request),
                                                           view.lead["lead_id"],
                                                           view.lead.get("model")),
                  journeys=lifecycle_views.lead_journeys(_service(request),
                                                         view.lead["lead_id"]),
                  email=lifecycle_views.lead_email(_service(request), view.lead["lead_id"],
                                                   view.lead.get("traits") or {}),
                  sales=sales_views.lead_sales(_service(request), view.lead["lead_id"]),
                  note=request.query_params.get("note", "")[:300])


# ---- accounts


@router.get("/accounts")
def accounts_list(request: Request, model: str | None = None, mqa: str = "", q: str = "",
                  page: int = 1) -> HTMLResponse:
    _guard(request)
    models: list[str] = _service(request).account_models()
    if not models:      # no model scores accounts
        return render(request, "accounts.html", page="accounts", rows=[], total=0, model="",
                      models=[], mqa="", q="", number=1, pages=1, page_url=str)
    chosen = model if model is not None and model in models else models[0]
    mqa = mqa if mqa in ("yes", "no") else ""
    q = q.strip()[:100]
    number = max(page, 1)
    rows, total = account_views.accounts_page(_service(request), chosen,
                                              {"yes": True, "no": False}.get(mqa), q, number)
    keep = [(k, v) for k, v in (("model", chosen), ("mqa", mqa), ("q", q)) if v]
    return render(request, "accounts.html", page="accounts", rows=rows, total=total,
                  model=chosen, models=models, mqa=mqa, q=q, number=number,
                  pages=max((total + account_views.PAGE_SIZE - 1) // account_views.PAGE_SIZE,
                            1),
                  page_url=lambda n: _url("/accounts", keep, page=str(n)))


@router.get("/accounts/{account_id}")
def account_page(request: Request, account_id: str, model: str | None = None
                 ) -> HTMLResponse:
    _guard(request)
    try:
        view = account_views.account_view(_service(request), account_id, model)
    except NotFound as exc:
        return render(request, "not_found.html", 404, page="accounts", message=str(exc))
    return render(request, "account.html", page="accounts", a=view)


# ---- segments, programs and the outbox of program e-mails


def _lifecycle(request: Request) -> Any:
    from leadscore.api.lifecycle import lifecycle

    return lifecycle(request)


@router.get("/segments")
def segments_page(request: Request) -> HTMLResponse:
    _guard(request)
    rows = lifecycle_views.segments_overview(_service(request), _lifecycle(request).segments)
    return render(request, "segments.html", page="segments", rows=rows,
                  days=lifecycle_views.SIZE_DAYS)


@router.get("/segments/{name}")
def segment_page(request: Request, name: str, page: int = 1) -> HTMLResponse:
    _guard(request)
    found = next((s for s in _lifecycle(request).segments if s.name == name), None)
    if found is None:
        return render(request, "not_found.html", 404, page="segments",
                      message=f"no segment {name!r}")
    size, number = 50, max(page, 1)
    members, total = lifecycle_views.segment_members(_service(request), name, size,
                                                     (number - 1) * size)
    (row,) = [r for r in lifecycle_views.segments_overview(_service(request), [found])]
    return render(request, "segment.html", page="segments", s=row, members=members,
                  total=total, number=number, pages=max((total + size - 1) // size, 1),
                  days=lifecycle_views.SIZE_DAYS)


@router.get("/programs")
def programs_page(request: Request) -> HTMLResponse:
    _guard(request)
    rows = lifecycle_views.programs_overview(_service(request), _lifecycle(request).programs)
    return render(request, "programs.html", page="programs", rows=rows,
                  history=lifecycle_views.history_events(_service(request)))


@router.get("/programs/{name}")
def program_page(request: Request, name: str, lead: str = "") -> HTMLResponse:
    _guard(request)
    found = next((p for p in _lifecycle(request).programs if p.name == name), None)
    if found is None:
        return render(request, "not_found.html", 404, page="programs",
                      message=f"no program {name!r}")
    data = lifecycle_views.program_detail(_service(request), found, lead.strip() or None)
    return render(request, "program.html", page="programs", program=found, d=data,
                  lead=lead.strip())


@router.get("/outbox")
def outbox_page(request: Request, status: str | None = None, page: int = 1) -> HTMLResponse:
    _guard(request)
    status = status if status in lifecycle_views.OUTBOX_STATUSES else None
    size, number = 50, max(page, 1)
    items, total = lifecycle_views.outbox(_service(request), status, size, (number - 1) * size)
    settings = request.app.state.settings
    return render(request, "outbox.html", page="outbox", items=items, total=total,
                  state=status, states=lifecycle_views.OUTBOX_STATUSES, number=number,
                  pages=max((total + size - 1) // size, 1),
                  paused=not settings.smtp_url, no_secret=not settings.link_secret,
                  dead=lifecycle_views.dead_program_actions(_service(request)))


# ---- pipeline


@router.get("/pipeline")
def pipeline_page(request: Request, model: str | None = None) -> HTMLResponse:
    _guard(request)
    active, models = _model(request, model)
    if active is None:
        return render(request, "empty.html", page="pipeline")
    data = views.pipeline(_service(request), active.name)
    return render(request, "pipeline.html", page="pipeline", model=active, models=models,
                  d=data, grades=views.GRADES, temperatures=views.TEMPERATURES)


# ---- models


@router.get("/models")
def models_index(request: Request) -> Response:
    _guard(request)
    active, _ = _model(request, None)
    if active is None:
        return render(request, "empty.html", page="models")
    return RedirectResponse(f"{PREFIX}/models/{active.name}", status_code=303)


@router.get("/models/{name}")
def model_page(request: Request, name: str) -> HTMLResponse:
    _guard(request)
    active, models = _model(request, name)
    if active is None or active.name != name:
        return render(request, "not_found.html", 404, page="models",
                      message=f"no active model {name!r}")
    data = views.model_view(_service(request), active)
    result = _evaluations(request).results.get(name)
    whatif = {"eligible": data["eligible"], "threshold": data["threshold"],
              "outcomes": sorted(result.by_point.items()) if result else None}
    return render(request, "model.html", page="models", model=active, models=models, d=data,
                  result=result, whatif=json.dumps(whatif))


# ---- evaluation


def _evaluations(request: Request) -> Evaluations:
    state = request.app.state
    if getattr(state, "evaluations", None) is None:
        state.evaluations = Evaluations()
    found: Evaluations = state.evaluations
    return found


@router.get("/evaluation")
def evaluation_page(request: Request, model: str | None = None) -> HTMLResponse:
    _guard(request)
    active, models = _model(request, model)
    evaluations = _evaluations(request)
    return render(request, "evaluation.html", page="evaluation", model=active, models=models,
                  ev=evaluations, result=evaluations.results.get(active.name) if active
                  else None, missing=available(),
                  sales_insight=insights(_service(request).db, active.name) if active
                  else None)


@router.post("/evaluation")
async def run_evaluation(request: Request) -> Response:
    _guard(request)
    form = await _form(request)
    if not session.csrf_ok(request, form.get("csrf")):
        return render(request, "not_found.html", 403, page="evaluation",
                      message="The form expired: reload the page and try again.")
    active, _ = _model(request, form.get("model"))
    if active is not None and available() is None:
        try:
            days = float(form.get("days_back") or 30)
            window = float(form["window_days"]) if form.get("window_days") else None
        except ValueError:
            days, window = 30.0, None
        event = form.get("event", "").strip()
        _evaluations(request).start(_service(request), [active.model], days_back=days,
                                    window_days=window,
                                    events={active.name: event} if event else None)
    return RedirectResponse(f"{PREFIX}/evaluation?model={active.name if active else ''}",
                            status_code=303)


# ---- handoffs


@router.get("/handoffs")
def handoffs_page(request: Request, status: str | None = None, page: int = 1) -> HTMLResponse:
    _guard(request)
    status = status if status in ("pending", "delivered", "failed", "dead") else None
    page = max(page, 1)
    size = 50
    items, total = _service(request).handoffs(status=status, limit=size,
                                              offset=(page - 1) * size)
    dead = _service(request).handoffs(status="dead", limit=1)[1]
    return render(request, "handoffs.html", page="handoffs", items=items, total=total,
                  state=status, number=page, pages=max((total + size - 1) // size, 1),
                  dead=dead,
                  max_attempts=request.app.state.settings.delivery_max_attempts)


@router.post("/handoffs/{handoff_id}/retry")
async def retry(request: Request, handoff_id: str) -> Response:
    _guard(request)
    form = await _form(request)
    if not session.csrf_ok(request, form.get("csrf")):
        return render(request, "not_found.html", 403, page="handoffs",
                      message="The form expired: reload the page and try again.")
    try:
        _service(request).retry(handoff_id)
    except NotFound as exc:
        return render(request, "not_found.html", 404, page="handoffs", message=str(exc))
    wake = getattr(request.app.state, "wake_dispatcher", None)
    if wake is not None:
        wake()
    back = _safe_next(form.get("back", "")) if form.get("back") else PREFIX + "/handoffs"
    return RedirectResponse(back, status_code=303)


def install(app: FastAPI, extra: tuple[APIRouter, ...] = ()) -> None:
    """Serve the dashboard from `app`: a sub-application mounted at /dashboard (sharing the
    app's state: settings, service), and `/` redirecting there. Not in the OpenAPI document.
    `extra`: more pages' routers (the sales pages)."""
    dashboard = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    dashboard.state = app.state
    dashboard.include_router(router, prefix="")
    for more in extra:
        dashboard.include_router(more, prefix="")
    dashboard.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @dashboard.exception_handler(FormTooLarge)
    async def _too_large(request: Request, _: FormTooLarge) -> Response:
        return HTMLResponse(f"The form is over the {FORM_LIMIT // 1024} KB limit of a form.",
                            status_code=413)

    @dashboard.exception_handler(LoginRequired)
    async def _login(request: Request, _: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{PREFIX}/login?{urlencode({'next': target})}",
                                status_code=303)

    async def home(request: Request) -> Response:
        return RedirectResponse(PREFIX + "/", status_code=307)

    async def bare(request: Request) -> Response:
        return RedirectResponse(PREFIX + "/", status_code=307)

    if not any(getattr(r, "path", None) == "/" for r in app.routes):
        app.router.routes.append(Route("/", home, include_in_schema=False))
    app.router.routes.append(Route(PREFIX, bare, include_in_schema=False))
    app.mount(PREFIX, dashboard)
