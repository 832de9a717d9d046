"""Accounts (B2B) and their current scores: the companies leads belong to, scored live."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Security

from leadscore.api.auth import admin_scheme, require_admin
from leadscore.api.errors import ERROR_RESPONSES, MAX_OFFSET

router = APIRouter(prefix="/api/accounts", tags=["accounts"], responses=ERROR_RESPONSES,
                   dependencies=[Security(admin_scheme), Depends(require_admin)])

SORTS = Literal["score", "fit", "engagement", "account_id", "as_of"]


@router.get("/{account_id}", summary="One account: score, fit, engagement roll-up, roles "
                                     "engaged, MQA, reasons, and its people with their scores")
def get_account(request: Request, account_id: str,
                model: Annotated[str | None, Query(description="a model with an `account:` "
                                                               "section; default: the first")]
                = None) -> dict[str, Any]:
    account: dict[str, Any] = request.app.state.service.get_account(account_id, model=model)
    return account


@router.get("", summary="Accounts, filtered, sorted and paginated (with the total)")
def list_accounts(
    request: Request,
    model: str | None = None,
    min_score: float | None = None,
    mqa: Annotated[bool | None, Query(description="only MQAs (true) or only the others")]
    = None,
    q: Annotated[str | None, Query(description="text search in id, name and domain")] = None,
    sort: SORTS = "score",
    descending: bool = True,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, Any]:
    rows, total = request.app.state.service.list_accounts(
        model=model, min_score=min_score, mqa=mqa, q=q, sort=sort, descending=descending,
        limit=limit, offset=offset)
    return {"accounts": rows, "total": total, "limit": limit, "offset": offset}
