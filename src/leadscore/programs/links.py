"""Signed links in program e-mails: tracked clicks (carrying the link's `topic`), the open
pixel and the unsubscribe link. A token is base64url(JSON) + "." + HMAC-SHA256 (truncated);
the API checks it before anything is recorded, so a link cannot be forged or altered."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

SIGNATURE_CHARS = 32


class BadToken(ValueError):
    """The token was not signed with our secret, or is malformed."""


def _sign(body: str, secret: str) -> str:
    return hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()[
        :SIGNATURE_CHARS]


def make_token(data: dict[str, Any], secret: str) -> str:
    body = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":"),
                                               sort_keys=True).encode()).decode().rstrip("=")
    return f"{body}.{_sign(body, secret)}"


def read_token(token: str, secret: str) -> dict[str, Any]:
    body, _, signature = token.partition(".")
    if not body or not hmac.compare_digest(signature, _sign(body, secret)):
        raise BadToken("bad signature")
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except ValueError:
        raise BadToken("malformed token") from None
    if not isinstance(data, dict):
        raise BadToken("malformed token")
    return data


class Links:
    """The links of one e-mail (`email_id`) to one lead."""

    def __init__(self, base_url: str, secret: str, lead_id: str, email_id: str,
                 program: str):
        self.base = base_url.rstrip("/")
        self.secret, self.lead_id, self.email_id, self.program = (secret, lead_id, email_id,
                                                                  program)

    def _token(self, **extra: Any) -> str:
        return make_token({"l": self.lead_id, "e": self.email_id, "p": self.program, **extra},
                          self.secret)

    # A token is base64url and hex around a dot: nothing in it needs quoting in a URL path.
    def link(self, url: str, topic: str | None = None) -> str:
        return f"{self.base}/t/c/{self._token(u=url, t=topic)}"

    @property
    def pixel(self) -> str:
        return f"{self.base}/t/o/{self._token()}.gif"

    @property
    def unsubscribe(self) -> str:
        return f"{self.base}/t/u/{self._token()}"
