"""Signed links in program e-mails: tracked clicks (carrying the link's `topic`), the open
pixel, the unsubscribe link and the double opt-in confirmation.

A token is base64url(JSON) + "." + HMAC-SHA256 (truncated) with `link_secret`; the API checks
it before anything is recorded, so a link cannot be forged or altered. Each token says what it
is for (`k`: click, open, unsubscribe, confirm) and until when (`x`, seconds since the epoch):
a click token is no unsubscribe token, and an old e-mail's links stop counting.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any, Literal

SIGNATURE_CHARS = 32
DAY_S = 86_400
Purpose = Literal["click", "open", "unsubscribe", "confirm"]
# How long each kind of link counts after the e-mail is made. An unsubscribe link works for
# two years (laws ask for at least 30 days); a confirmation is asked for within a week.
LIFETIME_S: dict[str, int] = {"click": 180 * DAY_S, "open": 180 * DAY_S,
                              "unsubscribe": 730 * DAY_S, "confirm": 7 * DAY_S}


class BadToken(ValueError):
    """The token was not signed with our secret, is malformed, or is for something else."""


class ExpiredToken(BadToken):
    """A genuine token past its expiry; `data` is what it says (for a redirect all the same)."""

    def __init__(self, data: dict[str, Any]):
        super().__init__("expired link")
        self.data = data


class NoLinkSecret(RuntimeError):
    """No `link_secret` is configured: tracked e-mail cannot be sent (and no link verified)."""


def _sign(body: str, secret: str) -> str:
    return hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()[
        :SIGNATURE_CHARS]


def make_token(data: dict[str, Any], secret: str) -> str:
    if not secret:
        raise NoLinkSecret("no link_secret configured (LEADSCORE_LINK_SECRET)")
    body = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":"),
                                               sort_keys=True).encode()).decode().rstrip("=")
    return f"{body}.{_sign(body, secret)}"


def read_token(token: str, secret: str, purpose: Purpose, now_s: float) -> dict[str, Any]:
    """The token's data, if it is signed with `secret`, made for `purpose` and not expired
    at `now_s` (else BadToken, or ExpiredToken for a genuine one past its time)."""
    body, _, signature = token.partition(".")
    if not secret or not body or not hmac.compare_digest(signature.encode(errors="replace"),
                                                         _sign(body, secret).encode()):
        raise BadToken("bad signature")
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except ValueError:
        raise BadToken("malformed token") from None
    if not isinstance(data, dict) or data.get("k") != purpose:
        raise BadToken("not a link of this kind")
    expires = data.get("x")
    if not isinstance(expires, int) or now_s > expires:
        raise ExpiredToken(data)
    return data


def made_at(data: dict[str, Any]) -> float | None:
    """When a link's e-mail was made (seconds; a moment before it went to SMTP): its expiry
    less its purpose's lifetime. None where the token does not say."""
    expires, purpose = data.get("x"), data.get("k")
    if not isinstance(expires, int) or purpose not in LIFETIME_S:
        return None
    return float(expires - LIFETIME_S[purpose])


def token_digest(token: str) -> str:
    """A short, stable name for a token (replays of one link are one event per day); the
    token itself is never logged or stored."""
    return hashlib.sha256(token.encode(errors="replace")).hexdigest()[:24]


class Links:
    """The links of one e-mail (`email_id`) to one lead, made at `now_s`."""

    def __init__(self, base_url: str, secret: str, lead_id: str, email_id: str,
                 program: str, now_s: float):
        self.base = base_url.rstrip("/")
        self.secret, self.lead_id, self.email_id, self.program = (secret, lead_id, email_id,
                                                                  program)
        self.now_s = int(now_s)

    def _token(self, purpose: Purpose, **extra: Any) -> str:
        return make_token({"k": purpose, "x": self.now_s + LIFETIME_S[purpose],
                           "l": self.lead_id, "e": self.email_id, "p": self.program, **extra},
                          self.secret)

    # A token is base64url and hex around a dot: nothing in it needs quoting in a URL path.
    def link(self, url: str, topic: str | None = None) -> str:
        return f"{self.base}/t/c/{self._token('click', u=url, t=topic)}"

    @property
    def pixel(self) -> str:
        return f"{self.base}/t/o/{self._token('open')}.gif"

    @property
    def unsubscribe(self) -> str:
        return f"{self.base}/t/u/{self._token('unsubscribe')}"

    @property
    def confirm(self) -> str:
        return f"{self.base}/t/y/{self._token('confirm')}"
