"""The Segment HTTP tracking API: `/v1/identify|track|page|screen|group|alias|batch|import`,
and analytics.js's short paths for them (`/v1/i|t|p|s|g|a|b`) and RudderStack's beacon batch
(`/beacon/v1/batch?writeKey=`). A body is JSON whatever its
Content-Type (analytics.js sends `text/plain`, to need no preflight); the write key is the
Basic user name or `writeKey` in the body.

A single-message endpoint answers `{"success": true}` once the message is committed, or 400
with the one error shape. A batch stores every valid message and answers
`{"success": true, "accepted": n, "duplicates": n, "rejected": [{index, field, message}]}`;
only when no message of it could be stored is it a 400 (listing each problem). Structural
problems (not JSON, not UTF-8, `batch` not a list, over 500 KB) refuse the whole request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Security
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from leadscore.api.auth import check_write_key, header_write_key, write_key_scheme
from leadscore.api.body import BATCH_LIMIT, MESSAGE_LIMIT, read_json
from leadscore.api.errors import ERROR_RESPONSES, ApiError
from leadscore.api.limits import Limits
from leadscore.api.messages import TYPES, check_message, problem
from leadscore.api.outcome import Outcome, ingest
from leadscore.programs.optouts import from_trusted_events

log = logging.getLogger("leadscore.ingest")
router = APIRouter(tags=["ingestion"], dependencies=[Security(write_key_scheme)],
                   responses=ERROR_RESPONSES)


class Accepted(BaseModel):
    """Segment's answer, with what happened to each message of a batch."""

    success: bool = True
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = []


_MESSAGE = {"type": "object", "additionalProperties": True, "properties": {
    "userId": {"type": "string"}, "anonymousId": {"type": "string"},
    "messageId": {"type": "string"}, "timestamp": {"type": "string", "format": "date-time"},
    "event": {"type": "string"}, "name": {"type": "string"},
    "traits": {"type": "object"}, "properties": {"type": "object"},
    "context": {"type": "object"}, "groupId": {"type": "string"},
    "previousId": {"type": "string"}, "writeKey": {"type": "string"},
    "type": {"type": "string", "enum": list(TYPES)}}}
_BATCH = {"type": "object", "required": ["batch"], "additionalProperties": True, "properties": {
    "batch": {"type": "array", "items": _MESSAGE}, "sentAt": {"type": "string"},
    "context": {"type": "object"}, "writeKey": {"type": "string"}}}


def _body(schema: dict[str, Any], limit: int) -> dict[str, Any]:
    return {"requestBody": {"required": True, "description": f"JSON, optionally gzip "
                            f"(Content-Encoding: gzip); at most {limit // 1024} KB inflated",
                            "content": {"application/json": {"schema": schema}}}}


async def _opt_outs(request: Request, key: str | None, messages: list[dict[str, Any]]) -> None:
    """A trusted key's `Unsubscribed` / `Opted In` events change who gets program e-mail
    (any other key's are scored only: the write key is public)."""
    if request.app.state.settings.is_trusted_key(key):
        await run_in_threadpool(from_trusted_events, request.app.state.service, messages)


def log_rejected(request: Request, rejected: list[dict[str, Any]]) -> None:
    """A warning per rejected message: where and why, never its content (traits, ids)."""
    for item in rejected:
        log.warning("message rejected", extra={
            "path": request.url.path, "index": item["index"], "field": item["field"],
            "reason": item["message"]})


def _answer(request: Request, outcome: Outcome) -> Accepted:
    wake = request.app.state.wake_dispatcher
    if outcome.handoffs and wake is not None:
        wake()
    return Accepted(accepted=outcome.accepted, duplicates=outcome.duplicates,
                    rejected=outcome.rejected)


def _single(kind: str) -> Callable[[Request], Coroutine[Any, Any, Accepted]]:
    async def receive(request: Request) -> Accepted:
        known = header_write_key(request)
        limits: Limits = request.app.state.limits
        limits.check_open(request, known)
        body = await read_json(request, MESSAGE_LIMIT, "message")
        if known is None:
            known = check_write_key(request, body.get("writeKey") if isinstance(body, dict)
                                    else None)
        limits.take(request, known, 1)
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object (one Segment message)",
                           [problem(None, None, "not an object")])
        message = dict(body)
        message.pop("writeKey", None)
        message["type"] = kind
        outcome = await run_in_threadpool(ingest, request.app.state.service, [message], [None])
        if outcome.rejected:
            log_rejected(request, outcome.rejected)
            first = outcome.rejected[0]
            raise ApiError(400, f"{first['field'] or 'message'}: {first['message']}",
                           outcome.rejected)
        await _opt_outs(request, known, [message])
        return _answer(request, outcome)

    receive.__name__ = kind
    receive.__doc__ = f"Record a Segment `{kind}` message."
    return receive


for _kind in TYPES:
    _receive = _single(_kind)
    router.add_api_route(f"/v1/{_kind}", _receive, methods=["POST"],
                         response_model=Accepted, summary=f"Segment {_kind}",
                         openapi_extra=_body(_MESSAGE, MESSAGE_LIMIT))
    # analytics.js's short path (`/v1/t`, `/v1/p`, ...): the same handler.
    router.add_api_route(f"/v1/{_kind[0]}", _receive, methods=["POST"],
                         response_model=Accepted, summary=f"Segment {_kind} (analytics.js path)",
                         openapi_extra=_body(_MESSAGE, MESSAGE_LIMIT),
                         operation_id=f"{_kind}_short")


async def batch(request: Request) -> Accepted:
    """Record a batch of Segment messages: the valid ones are stored, the others listed."""
    known = header_write_key(request)
    limits: Limits = request.app.state.limits
    limits.check_open(request, known)
    body = await read_json(request, BATCH_LIMIT, "batch")
    if known is None:     # in the body, or (RudderStack's beacon) the query string
        known = check_write_key(request, body.get("writeKey") if isinstance(body, dict)
                                and "writeKey" in body else
                                request.query_params.get("writeKey"))
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object with a `batch` list",
                       [problem(None, "batch", "not an object")])
    items = body.get("batch")
    if not isinstance(items, list):
        raise ApiError(400, "batch must be a list of messages",
                       [problem(None, "batch", "missing or not a list")])
    limits.take(request, known, len(items))
    measure = int(request.headers.get("content-length") or 0) > MESSAGE_LIMIT or \
        request.headers.get("content-encoding") is not None
    shared_context = body.get("context") if isinstance(body.get("context"), dict) else None
    sent_at = body.get("sentAt")
    messages: list[dict[str, Any]] = []
    indexes: list[int] = []
    rejected: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        found = check_message(item, index, measure=measure)
        if found:
            rejected.append(found)
            continue
        message = dict(item)
        message.pop("writeKey", None)
        if sent_at is not None and "sentAt" not in message:
            message["sentAt"] = sent_at
        own = message.get("context")
        if shared_context and (own is None or isinstance(own, dict)):
            message["context"] = {**shared_context, **(own or {})}   # else: rejected, named
        messages.append(message)
        indexes.append(index)
    outcome = Outcome(0, 0, [])
    if messages:
        outcome = await run_in_threadpool(ingest, request.app.state.service, messages, indexes)
        refused = {p["index"] for p in outcome.rejected}
        await _opt_outs(request, known, [m for m, i in zip(messages, indexes, strict=True)
                                         if i not in refused])
    outcome.rejected = sorted(rejected + outcome.rejected, key=lambda p: p["index"])
    log_rejected(request, outcome.rejected)
    if outcome.rejected and not outcome.accepted and not outcome.duplicates:
        raise ApiError(400, f"no message of the batch could be stored ({len(outcome.rejected)} "
                       f"rejected; first: message {outcome.rejected[0]['index']}: "
                       f"{outcome.rejected[0]['message']})", outcome.rejected)
    return _answer(request, outcome)


_BATCH_SUMMARIES = {"/v1/batch": "Segment batch", "/v1/import": "Segment import (same as batch)",
                    "/v1/b": "Segment batch (analytics.js path)",
                    "/beacon/v1/batch": "Batch sent by RudderStack's beacon (writeKey in the "
                                        "query string)"}
for _path, _summary in _BATCH_SUMMARIES.items():
    router.add_api_route(_path, batch, methods=["POST"], response_model=Accepted,
                         summary=_summary,
                         openapi_extra=_body(_BATCH, BATCH_LIMIT),
                         operation_id=_path.strip("/").replace("/", "_"))
