"""Who may call what: write keys (HTTP Basic user name, as Segment) may only send messages;
the admin bearer token may read and administer. A write key on an admin route is a 403."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import Request
from fastapi.security import HTTPBasic, HTTPBearer

from leadscore.api.cors import check_key_origin
from leadscore.api.errors import ApiError
from leadscore.config import Settings

# Declared for the OpenAPI document; the checks below do the work (one error shape).
write_key_scheme = HTTPBasic(scheme_name="writeKey", auto_error=False,
                             description="The write key as user name, empty password "
                                         "(Segment's scheme); or `writeKey` in the body.")
admin_scheme = HTTPBearer(scheme_name="adminToken", auto_error=False,
                          description="The admin token printed by `leadscore init`.")

_ADMIN_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="leadscore"'}
_WRITE_CHALLENGE = {"WWW-Authenticate": 'Basic realm="leadscore"'}


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def basic_user(header: str) -> str | None:
    """The user name of a `Basic` Authorization header (None if it is not one)."""
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except ValueError:     # binascii.Error, UnicodeDecodeError, non-ASCII text
        raise ApiError(401, "the Basic credentials are not base64 of 'writekey:'",
                       [{"field": "Authorization", "message": "malformed Basic credentials"}],
                       _WRITE_CHALLENGE) from None
    return decoded.partition(":")[0]


def header_write_key(request: Request) -> str | None:
    """The write key of the Authorization header, checked; None when there is no header."""
    header = request.headers.get("authorization")
    if not header:
        return None
    user = basic_user(header)
    if user is None:
        raise ApiError(401, "the ingestion API takes HTTP Basic auth with the write key as "
                       "user name", [{"field": "Authorization", "message": "expected Basic"}],
                       _WRITE_CHALLENGE)
    return check_write_key(request, user)


def check_write_key(request: Request, key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise ApiError(401, "a write key is required: the HTTP Basic user name, or writeKey in "
                       "the body", [{"field": "writeKey", "message": "missing"}],
                       _WRITE_CHALLENGE)
    if not settings_of(request).is_write_key(key):
        raise ApiError(401, "unknown write key", [{"field": "writeKey",
                                                   "message": "not a configured write key"}],
                       _WRITE_CHALLENGE)
    check_key_origin(request, key)
    return key


def require_admin(request: Request) -> None:
    """The admin bearer token, or 401; a write key is recognised and refused with 403."""
    settings = settings_of(request)
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and credentials:
        if settings.is_admin_token(credentials):
            return
        if settings.is_write_key(credentials):
            raise _write_key_refused()
        if settings.is_sales_key(credentials):
            raise ApiError(403, "the sales key can only read leads and give feedback",
                           [{"field": "Authorization", "message": "sales key on an admin "
                                                                  "route"}])
        raise ApiError(401, "invalid admin token", [{"field": "Authorization",
                                                     "message": "not the admin token"}],
                       _ADMIN_CHALLENGE)
    if scheme.lower() == "basic":
        user = basic_user(header)
        if user and settings.is_write_key(user):
            raise _write_key_refused()
        if user and settings.is_admin_token(user):
            return
    raise ApiError(401, "an admin bearer token is required (Authorization: Bearer <token>)",
                   [{"field": "Authorization", "message": "missing"}], _ADMIN_CHALLENGE)


def _write_key_refused() -> ApiError:
    return ApiError(403, "a write key can only send messages; reading needs the admin token",
                    [{"field": "Authorization", "message": "write key on an admin route"}])


sales_scheme = HTTPBearer(scheme_name="salesKey", auto_error=False,
                          description="The optional sales key (setting `sales_key_sha256`): "
                                      "read leads and give feedback, nothing else.")


def is_sales(request: Request) -> bool:
    """Whether the request carries the sales key (and not the admin token)."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and settings_of(request).is_sales_key(credentials.strip())


def require_sales_or_admin(request: Request) -> str:
    """The admin token or the sales key; returns who: `admin` or `sales`."""
    if is_sales(request):
        return "sales"
    require_admin(request)
    return "admin"
