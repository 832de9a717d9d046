"""The one JSON error shape of the API: `{"ok": false, "error", "errors", "status"}`.

`error` is one sentence for a person, `errors` the list of problems (each an object naming
where: a field, a message index in a batch, a model file line), `status` the HTTP status.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from leadscore.api.security import loggable_path
from leadscore.errors import EventError, LeadscoreError, ModelError

log = logging.getLogger("leadscore.api")

REASONS = {400: "bad request", 401: "unauthorized", 403: "forbidden", 404: "not found",
           405: "method not allowed", 409: "conflict", 413: "payload too large",
           415: "unsupported media type", 422: "unprocessable", 429: "too many requests",
           500: "internal error",
           503: "unavailable"}


# Integers past 64 bits do not fit a database column (SQLite raises OverflowError).
MAX_OFFSET = 2**62


class ApiError(Exception):
    """An error answered with the one error shape."""

    def __init__(self, status: int, error: str, errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(error)
        self.status, self.error, self.errors, self.headers = status, error, errors or [], headers


class ErrorBody(BaseModel):
    """Every error the API answers (OpenAPI schema of the shape)."""

    ok: bool = False
    error: str
    errors: list[dict[str, Any]] = []
    status: int


def error_body(status: int, error: str, errors: list[dict[str, Any]] | None = None
               ) -> dict[str, Any]:
    return {"ok": False, "error": error, "errors": errors or [], "status": status}


class ErrorResponse(JSONResponse):
    """JSON that always renders: a lone surrogate quoted from the request (a YAML escape, a
    path) is written as its `\\udXXX` escape instead of failing to encode (a 500)."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False,
                              separators=(",", ":")).encode("ascii")


def error_response(status: int, error: str, errors: list[dict[str, Any]] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return ErrorResponse(error_body(status, error, errors), status_code=status, headers=headers)


def problem_dict(problem: Any) -> dict[str, Any]:
    """A model file problem (leadscore.errors.Problem) as JSON."""
    return {"file": problem.file, "line": problem.line, "key": problem.key,
            "message": problem.message,
            "value": problem.value if _jsonable(problem.value) else repr(problem.value),
            "expected": problem.expected, "suggestion": problem.suggestion}


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def is_not_found(exc: BaseException) -> bool:
    return any(cls.__name__ in ("NotFound", "NotFoundError") for cls in type(exc).__mro__)


def install(app: FastAPI) -> None:
    """Make every error of `app` answer the one shape (404, 405, 422, 500 included)."""

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.error, exc.errors, exc.headers)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        detail = exc.detail if isinstance(exc.detail, str) else REASONS.get(status, "error")
        if status == 404 and detail == "Not Found":
            detail = f"no such endpoint: {request.method} {request.url.path}"
        elif status == 405:
            detail = f"method {request.method} not allowed on {request.url.path}"
        return error_response(status, detail, None, getattr(exc, "headers", None))

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [{"field": ".".join(str(p) for p in e.get("loc", ())[1:]) or None,
                   "in": str(e.get("loc", ("request",))[0]),
                   "message": e.get("msg", "invalid"),
                   "value": e.get("input") if _jsonable(e.get("input")) else None}
                  for e in exc.errors()]
        first = errors[0] if errors else {"field": None, "message": "invalid request"}
        where = f"{first['in']} parameter {first['field']!r}" if first.get("field") else "request"
        return error_response(422, f"{where}: {first['message']}", errors)

    async def leadscore_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, ModelError):
            return error_response(422, f"the model does not validate ({len(exc.problems)} "
                                  "problem(s)); the running version is unchanged",
                                  [problem_dict(p) for p in exc.problems])
        if is_not_found(exc):
            return error_response(404, not_found_text(exc))
        if isinstance(exc, EventError):
            return error_response(400, str(exc), [{"field": exc.field, "message": str(exc)}])
        return error_response(400, str(exc))

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        if is_not_found(exc):
            return error_response(404, not_found_text(exc))
        log.exception("internal error on %s %s", request.method,
                      loggable_path(request.url.path))
        return error_response(500, f"internal error ({type(exc).__name__}); it was logged")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(LeadscoreError, leadscore_error)
    app.add_exception_handler(Exception, server_error)


def not_found_text(exc: Exception) -> str:
    """The message of a not-found error: a KeyError's argument as given (`str()` of a
    KeyError quotes it; stripping those quotes also cut the ones in "no lead 'nobody'")."""
    return str(exc.args[0]) if exc.args else "not found"


# For the OpenAPI document: every route may answer these with the error shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": REASONS[status]}
    for status in (400, 401, 403, 404, 413, 422, 429, 500)
}
