"""What every response carries and what the server shows of itself: security headers, the
API's documentation page without any third-party script, the favicon, and paths as logs may
show them (a link token in a path is a credential: it never reaches a log).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FAVICON = Path(__file__).parent.parent / "dashboard" / "static" / "favicon.ico"
# Inline style attributes are the dashboard charts'; no inline script, no other origin.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
HSTS = "max-age=31536000; includeSubDomains"
_HEADERS = ((b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))
# E-mail tracking links: /t/<kind>/<token>; the token is a bearer credential.
_TOKEN_PATH = re.compile(r"^(/t/[^/]+/)[^/]+")


def loggable_path(path: str) -> str:
    """A request path as logs may show it: link tokens replaced by `…`."""
    return _TOKEN_PATH.sub(r"\1…", path)


class SecurityHeaders:
    """CSP (no framing, no other origin), X-Frame-Options, nosniff and no Referer on every
    response; HSTS when the request came over TLS (directly or from a trusted proxy)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tls = scope.get("scheme") == "https"

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS:
                    if name.decode() not in headers:
                        headers.raw.append((name, value))
                if tls:
                    headers.raw.append((b"strict-transport-security", HSTS.encode()))
            await send(message)

        await self.app(scope, receive, sending)


class RefuseNul:
    """A NUL character in the path or the query is a 400 before any route runs: PostgreSQL
    cannot compare text with one (a 500 on every filter that reaches it)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = bytes(scope.get("query_string", b"")) if scope["type"] == "http" else b""
        if scope["type"] == "http" and ("\x00" in scope["path"] or b"%00" in query
                                        or b"\x00" in query):
            response = JSONResponse(
                {"ok": False, "error": "a NUL character (%00) is not allowed in the URL",
                 "errors": [{"field": "url", "message": "NUL character"}], "status": 400},
                status_code=400)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


_DOCS = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} API</title>
<link rel="icon" href="/favicon.ico"></head>
<body style="font-family: system-ui, sans-serif; max-width: 44rem; margin: 2rem auto">
<h1>{title} {version}: the HTTP API</h1>
<p>The OpenAPI document is <a href="/openapi.json">/openapi.json</a>. This server loads no
script from another site; to browse the API, open that document in an OpenAPI viewer you run
yourself (for example Swagger UI or an editor's OpenAPI preview).</p>
<ul>{operations}</ul>
</body></html>"""


def install(app: FastAPI) -> None:
    """The headers on every response, `/docs` (a plain list of operations, linking to
    `/openapi.json`) and `/favicon.ico`."""
    app.add_middleware(RefuseNul)
    app.add_middleware(SecurityHeaders)     # outside: the 400 above carries the headers too

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        items = []
        for path, operations in app.openapi().get("paths", {}).items():
            for method, operation in operations.items():
                items.append(f"<li><code>{method.upper()} {html.escape(path)}</code> — "
                             f"{html.escape(str(operation.get('summary', '')))}</li>")
        return HTMLResponse(_DOCS.format(title=html.escape(app.title),
                                         version=html.escape(app.version),
                                         operations="\n".join(items)))

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(FAVICON.read_bytes(), media_type="image/x-icon",
                        headers={"Cache-Control": "public, max-age=86400"})
