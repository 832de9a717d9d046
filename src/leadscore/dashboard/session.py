"""The dashboard login: the admin token, once, for a signed session cookie.

The cookie holds its expiry and an HMAC-SHA256 of it, keyed by the admin token's hash: every
worker can check it without shared state, and changing the admin token ends every session. It
is HttpOnly and SameSite=Strict; forms that change something also carry a CSRF token derived
from the session.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from fastapi import Request, Response

from leadscore.config import Settings

COOKIE = "leadscore_session"
MAX_AGE_S = 12 * 3600


def _key(settings: Settings) -> bytes | None:
    if settings.admin_token_sha256 is None:
        return None
    return hashlib.sha256(b"leadscore dashboard session\x00"
                          + settings.admin_token_sha256.encode()).digest()


def _sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def new_session(settings: Settings, now: float | None = None) -> str:
    key = _key(settings)
    assert key is not None
    expires = str(int((time.time() if now is None else now) + MAX_AGE_S))
    return f"{expires}.{_sign(key, expires)}"


def valid(settings: Settings, value: str | None, now: float | None = None) -> bool:
    key = _key(settings)
    if key is None or not value:
        return False
    expires, _, signature = value.partition(".")
    if not expires.isdigit() or not hmac.compare_digest(signature, _sign(key, expires)):
        return False
    return int(expires) > (time.time() if now is None else now)


def signed_in(request: Request) -> bool:
    return valid(request.app.state.settings, request.cookies.get(COOKIE))


def csrf_token(request: Request) -> str:
    key = _key(request.app.state.settings)
    return _sign(key, "csrf\x00" + request.cookies.get(COOKIE, ""))[:32] if key else ""


def csrf_ok(request: Request, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(str(token), csrf_token(request))


def set_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(COOKIE, value, max_age=MAX_AGE_S, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
