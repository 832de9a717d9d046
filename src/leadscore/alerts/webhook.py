"""The one way a signed body is POSTed: handoff webhooks (`targets.WebhookTarget`) and program
`webhook` steps. The receiver checks `X-Leadscore-Signature` against the exact body and
deduplicates by `X-Leadscore-Delivery` (see `alerts.payload`)."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from leadscore.alerts.payload import DELIVERY_HEADER, SIGNATURE_HEADER, sign


def post_signed(url: str, body: bytes, secret: str, delivery_id: str, *, timeout: float,
                client: httpx.Client | None = None,
                headers: Mapping[str, str] | None = None) -> httpx.Response:
    """POST `body` as JSON signed with `secret`, with `headers` besides: on `client` where
    given (its own timeout), else as a one-off request with `timeout`. The response, whatever
    its status (the caller judges it); httpx.HTTPError when there is none."""
    sent = {"Content-Type": "application/json", DELIVERY_HEADER: delivery_id,
            SIGNATURE_HEADER: sign(body, secret), **(headers or {})}
    if client is not None:
        return client.post(url, content=body, headers=sent)
    return httpx.post(url, content=body, timeout=timeout, headers=sent)
