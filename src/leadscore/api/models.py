"""Models in the service: list, read, upload a new version (validated first), restore."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Security
from starlette.concurrency import run_in_threadpool

from leadscore.api.auth import admin_scheme, require_admin
from leadscore.api.body import MODEL_LIMIT, read_bytes
from leadscore.api.errors import ERROR_RESPONSES, ApiError

router = APIRouter(prefix="/api/models", tags=["models"], responses=ERROR_RESPONSES,
                   dependencies=[Security(admin_scheme), Depends(require_admin)])

_YAML_BODY = {"requestBody": {"required": True, "description": "the model file (YAML, §3 "
                              "format), at most 1 MB",
                              "content": {"application/yaml": {"schema": {"type": "string"}},
                                          "text/plain": {"schema": {"type": "string"}}}}}


@router.get("", summary="The models and their active versions")
def list_models(request: Request) -> dict[str, Any]:
    return {"models": request.app.state.service.models()}


@router.get("/{name}", summary="A model: active version, rescoring progress")
def get_model(request: Request, name: str) -> dict[str, Any]:
    status: dict[str, Any] = request.app.state.service.model_status(name)
    return status


@router.get("/{name}/versions", summary="Every stored version of a model")
def versions(request: Request, name: str) -> dict[str, Any]:
    return {"name": name, "versions": request.app.state.service.model_versions(name)}


@router.put("/{name}", status_code=202, openapi_extra=_YAML_BODY,
            summary="Upload a new version (YAML body); rescoring runs in the background",
            responses={422: {"description": "the model does not validate: `errors` lists each "
                                            "problem (line, key, message, expected, "
                                            "suggestion); the running version stays"}})
async def put_model(request: Request, name: str) -> dict[str, Any]:
    data = await read_bytes(request, MODEL_LIMIT, "model")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the model is not valid UTF-8 (offset {exc.start})") from None
    service = request.app.state.service
    version = await run_in_threadpool(service.put_model, name, text)
    await run_in_threadpool(service.sales.record, "admin", "model", name,
                            {"version": version, "chars": len(text)})
    status = await run_in_threadpool(service.model_status, name)
    return {"name": name, "version": version, "status": status}


@router.post("/{name}/restore/{version}", summary="Make an older version active again")
def restore(request: Request, name: str,
            version: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> dict[str, Any]:
    request.app.state.service.restore_model(name, version)
    request.app.state.service.sales.record("admin", "model restored", name, {"version": version})
    status: dict[str, Any] = request.app.state.service.model_status(name)
    return {"name": name, "version": version, "status": status}
