"""The JSON a handoff is delivered as, and its signature.

Receivers verify `X-Leadscore-Signature: sha256=<hex>`, the HMAC-SHA256 of the exact body bytes
with the webhook's secret, and deduplicate by `X-Leadscore-Delivery` (the same for every
attempt of one handoff).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

SIGNATURE_HEADER = "X-Leadscore-Signature"
DELIVERY_HEADER = "X-Leadscore-Delivery"
ATTEMPT_HEADER = "X-Leadscore-Attempt"


def body_bytes(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                      default=str).encode("utf-8")


def sign(body: bytes, secret: str) -> str:
    """The signature header value of `body`."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str | None) -> bool:
    """Whether `header` is the signature of `body` (what a receiver does)."""
    return header is not None and hmac.compare_digest(sign(body, secret), header)


def summary(payload: Mapping[str, Any]) -> str:
    """One line for people: who, under which model, with what score."""
    lead = payload.get("lead")
    lead_id = lead.get("id") if isinstance(lead, Mapping) else lead
    lead_id = lead_id or payload.get("lead_id")
    score = payload.get("score")
    number = score.get("score") if isinstance(score, Mapping) else score
    grade = payload.get("grade") or (score.get("grade") if isinstance(score, Mapping) else None)
    shown = f"{number:.1f}" if isinstance(number, int | float) else str(number)
    return f"{lead_id} is an MQL under {payload.get('model')}: score {shown}, grade {grade}"
