"""Cross-origin requests from web pages (analytics.js, RudderStack's SDK), allowed only from
the sites the operator names (`cors_origins`).

A browser sends `Origin` with every cross-origin request. The preflight (`OPTIONS`) of an
allowed site is answered; a text/plain POST needs no preflight, so a write from a site not
allowed is refused here (403) before any handler stores it. Credentials are never allowed
(no `Access-Control-Allow-Credentials`): the write key travels in the body or in Basic auth,
never in a cookie. `write_key_origins` binds a key to its sites, so a key copied onto another
site's page is refused (`check_key_origin`, called where every write key is checked).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadscore.api.errors import ApiError, error_response
from leadscore.config import ConfigError, Settings

# The paths a page calls: the tracking API, RudderStack's beacon, analytics.js's settings,
# RudderStack's config.
CORS_PREFIXES = ("/v1/", "/beacon/v1/", "/js/", "/sourceConfig")
ALLOW_METHODS = "GET, POST, OPTIONS"
MAX_AGE = "600"
_ORIGIN = re.compile(r"^https?://[a-z0-9.\-\[\]:]+$")
_HEADER_LIST = re.compile(r"^[A-Za-z0-9\-_, ]*$")
_SAFE = ("GET", "HEAD")


def origin_of(text: str) -> str:
    """An origin as browsers send it: lower case, no trailing slash, no path."""
    return text.strip().rstrip("/").lower()


def _checked_origin(text: str, setting: str) -> str:
    origin = origin_of(text)
    if origin != "*" and not _ORIGIN.match(origin):
        raise ConfigError(f"{setting}: {text!r} is not an origin (scheme://host[:port], "
                          f"e.g. https://www.example.com)")
    return origin


@dataclass(frozen=True)
class Origins:
    """Which sites may send: `allowed` (or `any_site`), and the sites each bound key may send
    from."""

    allowed: frozenset[str]
    any_site: bool
    bound: dict[str, frozenset[str]]

    @classmethod
    def of(cls, settings: Settings) -> Origins:
        allowed = {_checked_origin(o, "cors_origins") for o in settings.cors_origins}
        bound: dict[str, set[str]] = {}
        for entry in settings.write_key_origins:
            key, sep, origin = entry.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"write_key_origins: {entry!r} is not `key=origin`")
            if origin_of(origin) == "*":
                raise ConfigError(f"write_key_origins: {entry!r} binds a key to every site; "
                                  "name its sites")
            bound.setdefault(key.strip(), set()).add(
                _checked_origin(origin, "write_key_origins"))
        return cls(frozenset(allowed - {"*"}), "*" in allowed,
                   {k: frozenset(v) for k, v in bound.items()})

    def allows(self, origin: str) -> bool:
        return self.any_site or origin in self.allowed


def cors_path(path: str) -> bool:
    return path.startswith(CORS_PREFIXES)


def _own_origin(scope: Scope, origin: str) -> bool:
    """A page of this server itself (same scheme, host and port) is not cross-origin."""
    host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
    return origin == f"{scope.get('scheme', 'http')}://{host}"


def check_key_origin(request: Request, key: str) -> None:
    """403 when `key` is bound to sites (`write_key_origins`) and the request's page is on
    another one. A request without `Origin` (a server, not a page) is not a page's."""
    origins: Origins | None = getattr(request.app.state, "origins", None)
    origin = request.headers.get("origin")
    if origins is None or origin is None or key not in origins.bound:
        return
    if origin_of(origin) not in origins.bound[key]:
        raise ApiError(403, f"this write key is bound to other sites; {origin_of(origin)!r} "
                       "is not one of them (write_key_origins)",
                       [{"field": "Origin", "message": "not a site of this write key"}])


class Cors:
    """ASGI middleware: preflights, `Access-Control-Allow-Origin` on the answers to allowed
    sites, and a 403 (nothing stored) for a write from a site not allowed."""

    def __init__(self, app: ASGIApp, origins: Origins):
        self.app = app
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not cors_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        raw = headers.get(b"origin")
        if raw is None:
            await self.app(scope, receive, send)
            return
        origin = origin_of(raw.decode("latin-1"))
        allowed = self.origins.allows(origin) or _own_origin(scope, origin)
        method = scope["method"]
        if method == "OPTIONS" and b"access-control-request-method" in headers:
            if not allowed:
                await _refuse(scope, receive, send, origin, preflight=True)
                return
            requested = headers.get(b"access-control-request-headers", b"").decode("latin-1")
            await _preflight(send, self._allow_origin(origin), requested)
            return
        if not allowed and method not in _SAFE:
            await _refuse(scope, receive, send, origin, preflight=False)
            return
        if not allowed:      # a read: answered, but the page may not see it
            await self.app(scope, receive, send)
            return
        allow = self._allow_origin(origin).encode("latin-1")

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      (b"access-control-allow-origin", allow),
                                      (b"vary", b"Origin")]
            await send(message)

        await self.app(scope, receive, sending)

    def _allow_origin(self, origin: str) -> str:
        return "*" if self.origins.any_site else origin


async def _preflight(send: Send, allow: str, requested: str) -> None:
    headers = [(b"access-control-allow-origin", allow.encode("latin-1")),
               (b"access-control-allow-methods", ALLOW_METHODS.encode()),
               (b"access-control-max-age", MAX_AGE.encode()), (b"vary", b"Origin"),
               (b"content-length", b"0")]
    if requested and _HEADER_LIST.match(requested):     # echoed: no credentials ride on them
        headers.append((b"access-control-allow-headers", requested.encode("latin-1")))
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _refuse(scope: Scope, receive: Receive, send: Send, origin: str, *,
                  preflight: bool) -> None:
    what = "may not call this API (preflight)" if preflight else "may not send here"
    await error_response(403, f"the site {origin!r} {what}: it is not in cors_origins",
                         [{"field": "Origin", "message": "not in cors_origins"}]
                         )(scope, receive, send)
