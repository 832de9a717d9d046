"""Rate limits of the ingestion API: token buckets per write key and per client address, in
messages a second (a batch counts its messages), and of bad dashboard sign-ins per address.

A request is refused with 429 and Retry-After before its body is read when a bucket is already
in debt, and after it is parsed when its messages would overdraw one: nothing of it is stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from leadscore.api.clients import client_address
from leadscore.api.errors import ApiError
from leadscore.config import Settings
from leadscore.ratelimit import Buckets, retry_after

BURST_SECONDS = 5.0                 # a bucket holds this many seconds' worth of messages
LOGIN_BURST = 10                    # bad sign-ins an address may make at once …
LOGIN_ATTEMPTS_PER_S = 10 / 300     # … then one every 30 seconds


@dataclass(frozen=True)
class Limits:
    per_key: Buckets
    per_ip: Buckets

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        def buckets(rate: float) -> Buckets:
            return Buckets(rate, rate * BURST_SECONDS)

        return cls(buckets(settings.rate_limit_per_key), buckets(settings.rate_limit_per_ip))

    def check_open(self, request: Request, key: str | None) -> None:
        """Before reading the body: 429 if the client's or the key's bucket is in debt."""
        self._refuse(self.per_ip.wait(client_address(request)), None)
        if key:
            self._refuse(self.per_key.wait(key), key)

    def take(self, request: Request, key: str, messages: int) -> None:
        """Spend `messages` tokens of the client's and the key's buckets, or 429."""
        if messages <= 0:
            return
        self._refuse(self.per_ip.take(client_address(request), messages), None)
        self._refuse(self.per_key.take(key, messages), key)

    @staticmethod
    def _refuse(wait: float, key: str | None) -> None:
        if wait:
            who = "this write key" if key else "your address"
            raise ApiError(429, f"rate limit: too many messages from {who}; retry in "
                           f"{retry_after(wait)} s", [{"field": "writeKey" if key else
                                                       "client", "message": "rate limited",
                                                       "retry_after": float(retry_after(wait))}],
                           {"Retry-After": retry_after(wait)})
