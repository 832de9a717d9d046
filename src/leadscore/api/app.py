"""The FastAPI application: ingestion (`/v1`), the admin API (`/api`), `/healthz`, and the
dashboard (`/dashboard`)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from leadscore import __version__
from leadscore.api import (
    accounts,
    browser,
    errors,
    filters,
    handoffs,
    ingest,
    leads,
    lifecycle,
    models,
    sales,
    security,
)
from leadscore.api.cors import Cors, Origins
from leadscore.api.limits import LOGIN_ATTEMPTS_PER_S, LOGIN_BURST, Limits
from leadscore.api.security import loggable_path
from leadscore.config import Settings
from leadscore.dashboard import install as install_dashboard
from leadscore.ratelimit import Buckets
from leadscore.service import Service

access_log = logging.getLogger("leadscore.access")
ROUTERS = (ingest.router, leads.router, leads.privacy, accounts.router, models.router,
           handoffs.router, filters.router, lifecycle.router, lifecycle.tracking, sales.sales,
           sales.admin, browser.router)


def open_service(settings: Settings) -> Service:
    return Service.open(settings.db, models_dir=settings.models_dir,
                        synchronous=settings.sqlite_synchronous, filters=settings.filters)


def create_app(settings: Settings, service: Service | None = None, *,
               on_handoff: Callable[[], None] | None = None) -> FastAPI:
    """The API for `settings`. Without `service`, one is opened at start-up and closed at
    shutdown (after the last request in flight has been answered)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = app.state.service is None
        if owned:
            app.state.service = open_service(settings)
        try:
            yield
        finally:
            if owned:
                app.state.service.close()

    app = FastAPI(title="leadscore", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None,     # own /docs: no script from a CDN
                  description="Segment-compatible ingestion, real-time lead scores, models and "
                              "sales handoffs. Errors: `{ok: false, error, errors, status}`.")
    app.state.settings = settings
    app.state.service = service
    app.state.wake_dispatcher = on_handoff
    app.state.origins = Origins.of(settings)
    app.state.limits = Limits.of(settings)
    app.state.login_attempts = Buckets(LOGIN_ATTEMPTS_PER_S, LOGIN_BURST)
    errors.install(app)
    security.install(app)
    for router in ROUTERS:
        app.include_router(router)
    install_dashboard(app)      # /dashboard, behind the admin login

    @app.get("/healthz", tags=["operations"], summary="Liveness: the service is up")
    def healthz(request: Request) -> dict[str, Any]:
        request.app.state.service.healthy()     # the store answers, or the error shape (500)
        return {"ok": True, "status": "up", "version": __version__}

    app.add_middleware(Cors, origins=app.state.origins)    # pages of cors_origins only
    if settings.log_requests:
        app.add_middleware(AccessLog)
    if settings.trusted_proxies:     # outermost: the others see the client and scheme it sets
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
    return app


class AccessLog:
    """One structured log line per request: method, path, status, milliseconds."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = scope.get("client")
            access_log.info("request", extra={
                "method": scope["method"], "path": loggable_path(scope["path"]),
                "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 2),
                "client": client[0] if client else None})
