"""First party: what the browser libraries fetch besides the tracking API, served by leadscore
so a site needs no third-party CDN or account.

- `/js/analytics.js/v1/{writeKey}/analytics.min.js`: the pinned `@segment/analytics-next`
  standalone build (vendored unmodified in `static/js/analytics-next/`), laid out as Segment's
  CDN so the snippet only changes its host (`analytics._cdn`); its chunks under
  `/js/analytics-next/bundles/`. Long-cached: a new version is a new leadscore release.
- `/js/v1/projects/{writeKey}/settings` (analytics.js's CDN settings): send to this server.
- `/sourceConfig` (RudderStack's control plane, `configUrl`): a source with no destinations.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse

from leadscore.api.auth import basic_user, check_write_key, settings_of
from leadscore.api.errors import ERROR_RESPONSES, ApiError

ANALYTICS_NEXT_VERSION = "1.84.3"
ANALYTICS_NEXT = Path(__file__).resolve().parent.parent / "static" / "js" / "analytics-next"
_CHUNK = re.compile(r"^[A-Za-z0-9_.\-]+\.js$")
_IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
_SETTINGS_CACHE = {"Cache-Control": "public, max-age=300"}
_JS = "application/javascript; charset=utf-8"

router = APIRouter(tags=["browser"], responses=ERROR_RESPONSES)


def _script(path: Path) -> FileResponse:
    return FileResponse(path, media_type=_JS, headers={
        **_IMMUTABLE, "X-Content-Type-Options": "nosniff",
        "X-Library-Version": f"@segment/analytics-next {ANALYTICS_NEXT_VERSION}"})


@router.get("/js/analytics.js/v1/{write_key}/analytics.min.js", response_class=FileResponse,
            summary=f"@segment/analytics-next {ANALYTICS_NEXT_VERSION} (standalone build)")
def analytics_js(write_key: str) -> FileResponse:
    """The library the Segment snippet loads; the write key in the path is the snippet's and
    is not checked here (the file is the same for every key)."""
    return _script(ANALYTICS_NEXT / "standalone.js")


@router.get("/js/analytics-next/bundles/{name}", response_class=FileResponse,
            summary="A chunk analytics.js loads on demand")
def analytics_chunk(name: str) -> FileResponse:
    path = ANALYTICS_NEXT / "bundles" / name
    if not _CHUNK.match(name) or not path.is_file():
        raise ApiError(404, f"no analytics.js chunk {name!r} in version "
                       f"{ANALYTICS_NEXT_VERSION}", [{"field": "name", "message": "unknown"}])
    return _script(path)


def _base_url(request: Request) -> str:
    """Where pages send: `public_url` when set, else the URL this request came to."""
    public = settings_of(request).public_url
    return (public or str(request.base_url)).rstrip("/")


@router.get("/js/v1/projects/{write_key}/settings", summary="analytics.js settings")
def analytics_settings(write_key: str, request: Request) -> JSONResponse:
    """What analytics.js fetches from its CDN at load: send every call to this server's
    `/v1` (Segment.io's `apiHost`, `protocol`), no other destination, no remote metrics."""
    check_write_key(request, write_key)
    scheme, _, host = _base_url(request).partition("://")
    body: dict[str, Any] = {
        "integrations": {"Segment.io": {
            "apiKey": write_key, "apiHost": f"{host}/v1", "protocol": scheme,
            "unbundledIntegrations": [], "addBundledMetadata": True,
            "maybeBundledConfigIds": {}}},
        "plan": {"track": {"__default": {"enabled": True, "integrations": {}}},
                 "identify": {"__default": {"enabled": True}},
                 "group": {"__default": {"enabled": True}}},
        "edgeFunction": {}, "analyticsNextEnabled": True, "middlewareSettings": {},
        "enabledMiddleware": {}, "metrics": {"sampleRate": 0}, "legacyVideoPluginsEnabled":
        False, "remotePlugins": []}
    return JSONResponse(body, headers=_SETTINGS_CACHE)


@router.get("/sourceConfig", summary="RudderStack source config (configUrl)")
@router.get("/sourceConfig/", summary="RudderStack source config (configUrl)",
            operation_id="rudderstack_source_config_slash")
def source_config(request: Request, writeKey: str | None = None) -> JSONResponse:
    """What RudderStack's SDK fetches from its control plane at load (`configUrl`): an
    enabled source with no device-mode destinations; events go to `dataPlaneUrl`."""
    key = writeKey
    header = request.headers.get("authorization")
    if header:
        key = basic_user(header) or key
    key = check_write_key(request, key)
    return JSONResponse({"source": {
        "id": "leadscore", "name": "leadscore", "writeKey": key, "workspaceId": "leadscore",
        "enabled": True, "config": {}, "destinations": []}}, headers=_SETTINGS_CACHE)
