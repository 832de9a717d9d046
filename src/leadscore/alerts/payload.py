"""The JSON a handoff is delivered as, and its signature.

Receivers verify `X-Leadscore-Signature: t=<unix seconds>,v1=<hex>`: `v1` is the HMAC-SHA256,
with the webhook's secret, of `<t>.` followed by the exact body bytes. A receiver refuses a
signature whose `t` is more than `TOLERANCE_S` (5 minutes) from its clock, so a captured
delivery cannot be replayed later; within that window it deduplicates by
`X-Leadscore-Delivery` (the same for every attempt of one handoff). `verify` is the check,
written out in docs/webhooks.md for receivers in other languages.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from leadscore.model.interests import summary as interest_summary

SIGNATURE_HEADER = "X-Leadscore-Signature"
DELIVERY_HEADER = "X-Leadscore-Delivery"
ATTEMPT_HEADER = "X-Leadscore-Attempt"


def body_bytes(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                      default=str).encode("utf-8")


TOLERANCE_S = 300


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body,
                    hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The signature header value of `body` sent at `timestamp` (default: now)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_mac(secret, t, body)}"


def verify(body: bytes, secret: str, header: str | None, *, now: float | None = None,
           tolerance: float = TOLERANCE_S) -> bool:
    """Whether `header` signs `body` with `secret` at a time within `tolerance` seconds of
    `now` (what a receiver does)."""
    if not header or not secret:
        return False
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        t = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = _mac(secret, t, body)
    return any(hmac.compare_digest(expected.encode(), v.encode(errors="replace"))
               for v in parts.get("v1", []))


def interests_line(payload: Mapping[str, Any]) -> str:
    """`interested in: SUV 5, sedan 2.5` from a handoff's `interested_in`, else its
    `interests` ({topic, weight} or [topic, weight] items); empty without any."""
    given = payload.get("interested_in")
    if isinstance(given, str) and given:
        return given
    items = payload.get("interests")
    pairs = [(i.get("topic"), i.get("weight")) if isinstance(i, Mapping) else tuple(i)[:2]
             for i in items if isinstance(i, Mapping | list | tuple)] \
        if isinstance(items, list) else []
    return interest_summary([(str(t), float(w)) for t, w in pairs
                             if t is not None and isinstance(w, int | float)])


def summary(payload: Mapping[str, Any]) -> str:
    """One line for people: who, under which model, with what score."""
    if payload.get("type") == "account_handoff":
        number = payload.get("score")
        shown = f"{number:.1f}" if isinstance(number, int | float) else str(number)
        return (f"account {payload.get('account_id')} is an MQA under {payload.get('model')}: "
                f"score {shown}, {payload.get('engaged_leads', 0)} of "
                f"{payload.get('leads', 0)} people engaged")
    lead = payload.get("lead")
    lead_id = lead.get("id") if isinstance(lead, Mapping) else lead
    lead_id = lead_id or payload.get("lead_id")
    score = payload.get("score")
    number = score.get("score") if isinstance(score, Mapping) else score
    grade = payload.get("grade") or (score.get("grade") if isinstance(score, Mapping) else None)
    shown = f"{number:.1f}" if isinstance(number, int | float) else str(number)
    return f"{lead_id} is an MQL under {payload.get('model')}: score {shown}, grade {grade}"
