"""Reading a request body: size limits, gzip, UTF-8 and JSON, each failure named (400/413/415).

Limits are Segment's: 32 KB for one message, 500 KB for a batch, measured on the decompressed
body (a gzip body is inflated no further than the limit, so a small bomb costs nothing).
"""

from __future__ import annotations

import json
import re
import zlib
from itertools import accumulate
from typing import Any

from starlette.requests import Request

from leadscore.api.errors import ApiError

KB = 1024
MESSAGE_LIMIT = 32 * KB
BATCH_LIMIT = 500 * KB
MODEL_LIMIT = 1024 * KB
# A gzip stream of incompressible data is a little longer than the data.
GZIP_SLACK = 1 * KB
_SURROGATE = re.compile(r"\\u[dD][89abcdefABCDEF][0-9a-fA-F]{2}")
# Deeper JSON is refused whole (a Segment message is a few levels deep): past ~1,000 levels
# Python's parser raises RecursionError, and deep values are costly to every later reader.
MAX_DEPTH = 64
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')     # unrolled: no backtracking
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def size_text(size: int) -> str:
    """A body size as the API's messages say it: `32 KB`, or `512 bytes` below a KB."""
    return f"{size / KB:.0f} KB" if size >= KB else f"{size} bytes"


def too_large(size: int | None, limit: int, what: str) -> ApiError:
    got = f" ({size_text(size)})" if size is not None else ""
    return ApiError(413, f"the {what} is over the {size_text(limit)} limit of a {what}{got}",
                    [{"field": "body", "limit": limit, "size": size,
                      "message": f"over the {size_text(limit)} limit"}])


async def read_bytes(request: Request, limit: int, what: str) -> bytes:
    """The body, inflated if gzip; 413 past `limit`, 415 for an unknown content encoding."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip", "x-gzip"):
        raise ApiError(415, f"unsupported Content-Encoding {encoding!r}; expected gzip or none",
                       [{"field": "Content-Encoding", "message": "expected gzip or identity"}])
    gzipped = encoding in ("gzip", "x-gzip")
    raw_limit = limit + GZIP_SLACK if gzipped else limit
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > raw_limit:
        raise too_large(int(declared), limit, what)
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > raw_limit:
            raise too_large(None, limit, what)
    if not gzipped:
        return bytes(chunks)
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(bytes(chunks), limit + 1)
    except zlib.error as exc:
        raise ApiError(400, f"the body is not valid gzip: {exc}",
                       [{"field": "body", "message": "not valid gzip"}]) from None
    if len(data) > limit:
        raise too_large(None, limit, what)
    if not inflater.eof:
        raise ApiError(400, "the gzip body is truncated",
                       [{"field": "body", "message": "truncated gzip stream"}])
    return data


def parse_json(data: bytes) -> Any:
    """The JSON document of a body: 400 naming invalid UTF-8, the JSON error and its place,
    NaN/Infinity, or a lone surrogate escape (text no database can store)."""
    if not data.strip():
        raise ApiError(400, "the body is empty; expected a JSON object",
                       [{"field": "body", "message": "empty"}])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start:exc.start + 1].hex()
        raise ApiError(400, f"the body is not valid UTF-8: byte 0x{bad} at offset {exc.start}",
                       [{"field": "body", "offset": exc.start,
                         "message": "invalid UTF-8"}]) from None
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc.msg} at line {exc.lineno} "
                       f"column {exc.colno}", [{"field": "body", "line": exc.lineno,
                                                "column": exc.colno, "message": exc.msg}]
                       ) from None
    except ValueError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}",
                       [{"field": "body", "message": str(exc)}]) from None
    except RecursionError:
        raise too_deep() from None
    if text.count("{") + text.count("[") > MAX_DEPTH and json_depth(text) > MAX_DEPTH:
        raise too_deep()
    if _SURROGATE.search(text):
        _check_surrogates(document, "")
    return document


def json_depth(text: str) -> int:
    """How deeply the arrays and objects of valid JSON text nest (brackets in strings aside)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def too_deep() -> ApiError:
    return ApiError(400, f"the body's JSON nests arrays and objects more than {MAX_DEPTH} "
                    "levels deep", [{"field": "body", "limit": MAX_DEPTH,
                                     "message": f"nested deeper than {MAX_DEPTH} levels"}])


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check_surrogates(node: Any, path: str) -> None:
    if isinstance(node, str):
        try:
            node.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(400, f"{path or 'body'}: a lone surrogate escape (\\ud800-\\udfff) "
                           "is not text", [{"field": path or "body",
                                            "message": "lone surrogate"}]) from None
    elif isinstance(node, dict):
        for key, value in node.items():
            _check_surrogates(key, path)
            _check_surrogates(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_surrogates(value, f"{path}[{i}]")


async def read_json(request: Request, limit: int, what: str) -> Any:
    return parse_json(await read_bytes(request, limit, what))
