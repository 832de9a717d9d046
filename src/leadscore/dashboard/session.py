"""The dashboard login: the admin token, once, for a session cookie.

The cookie holds a session id, its expiry and an HMAC-SHA256 of both. The key is a random
secret the store keeps (`store.sessions`, never in `leadscore.toml`) mixed with the admin
token's hash: reading the config file does not let anyone mint a session, and changing the
admin token ends every session. The store lists sessions, so logging out ends one for every
worker and host. The cookie is HttpOnly, SameSite=Strict, and Secure when the request came
over TLS (directly, or through a trusted proxy's X-Forwarded-Proto: `trusted_proxies`); forms
that change something also carry a CSRF token derived from the session.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from fastapi import Request, Response

from leadscore.store.sessions import (
    SESSION_KEY,
    end_session,
    session_alive,
    start_session,
    stored_secret,
)
from leadscore.timeutil import now_us

COOKIE = "leadscore_session"
MAX_AGE_S = 12 * 3600
US = 1_000_000


def _key(request: Request) -> bytes | None:
    state = request.app.state
    token_hash = state.settings.admin_token_sha256
    if token_hash is None:
        return None
    secret = getattr(state, "session_secret", None)
    if secret is None:
        secret = state.session_secret = stored_secret(state.service.db, SESSION_KEY, now_us())
    return hashlib.sha256(b"leadscore dashboard session\x00" + secret.encode() + b"\x00"
                          + token_hash.encode()).digest()


def _sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def new_session(request: Request, now: float | None = None) -> str:
    """A cookie value for a new session, recorded in the store."""
    key = _key(request)
    assert key is not None
    at = time.time() if now is None else now
    expires = str(int(at + MAX_AGE_S))
    session_id = start_session(request.app.state.service.db, int(at * US), int(expires) * US)
    text = f"{session_id}.{expires}"
    return f"{text}.{_sign(key, text)}"


def _parts(request: Request, value: str | None) -> tuple[str, int] | None:
    """(session id, expiry) of a well-signed cookie value, else None."""
    key = _key(request)
    if key is None or not value:
        return None
    text, _, signature = value.rpartition(".")
    session_id, _, expires = text.partition(".")
    if not session_id or not expires.isdigit() or not hmac.compare_digest(
            signature.encode(), _sign(key, text).encode()):
        return None
    return session_id, int(expires)


def valid(request: Request, value: str | None, now: float | None = None) -> bool:
    found = _parts(request, value)
    if found is None:
        return False
    at = time.time() if now is None else now
    return found[1] > at and session_alive(request.app.state.service.db, found[0],
                                           int(at * US))


def signed_in(request: Request) -> bool:
    cached = request.scope.get("leadscore.signed_in")    # one store read per request
    if cached is None:
        cached = request.scope["leadscore.signed_in"] = valid(request,
                                                              request.cookies.get(COOKIE))
    return bool(cached)


def end(request: Request) -> None:
    """Log out: the session of the request's cookie ends in the store."""
    found = _parts(request, request.cookies.get(COOKIE))
    if found is not None:
        end_session(request.app.state.service.db, found[0], now_us())


def csrf_token(request: Request) -> str:
    key = _key(request)
    return _sign(key, "csrf\x00" + request.cookies.get(COOKIE, ""))[:32] if key else ""


def csrf_ok(request: Request, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(str(token).encode(), csrf_token(request).encode())


def set_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(COOKIE, value, max_age=MAX_AGE_S, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
