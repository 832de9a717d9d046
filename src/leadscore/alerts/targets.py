"""Where handoffs go: webhooks (signed JSON over HTTP) and e-mail (SMTP)."""

from __future__ import annotations

import smtplib
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from leadscore import __version__
from leadscore.alerts.payload import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    body_bytes,
    interests_line,
    summary,
)
from leadscore.alerts.smtp import SmtpServer
from leadscore.alerts.webhook import post_signed
from leadscore.config import Settings


class DeliveryFailed(Exception):
    """One attempt to deliver to one target failed; the message says why."""


class Target(Protocol):
    name: str

    def send(self, delivery_id: str, payload: Mapping[str, Any], attempt: int) -> None:
        """Deliver or raise DeliveryFailed."""


@dataclass
class WebhookTarget:
    url: str
    secret: str
    timeout: float = 10.0

    def __post_init__(self) -> None:
        # Only the origin: a webhook URL's path often is its secret (it reaches logs).
        parts = urlsplit(self.url)
        self.name = f"webhook {parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        self._client = httpx.Client(timeout=self.timeout, follow_redirects=False)

    def send(self, delivery_id: str, payload: Mapping[str, Any], attempt: int) -> None:
        try:
            response = post_signed(self.url, body_bytes(payload), self.secret, delivery_id,
                                   timeout=self.timeout, client=self._client, headers={
                                       ATTEMPT_HEADER: str(attempt),
                                       "User-Agent": f"leadscore/{__version__}"})
        except httpx.HTTPError as exc:
            text = str(exc).replace(self.url, "…")
            raise DeliveryFailed(f"{self.name}: {type(exc).__name__}: {text}") from None
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"{self.name}: HTTP {response.status_code} "
                                 f"{response.text[:200]!r}")

    def close(self) -> None:
        self._client.close()


@dataclass
class EmailTarget:
    url: str               # smtp://[user:password@]host:port or smtps://…
    sender: str
    recipients: tuple[str, ...]
    timeout: float = 10.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        self.name = f"e-mail via {parts.hostname}:{parts.port}"
        self._server = SmtpServer.from_url(self.url)

    def message(self, delivery_id: str, payload: Mapping[str, Any]) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.recipients)
        mail["Subject"] = summary(payload)
        mail["Date"] = formatdate(localtime=False)
        # The same id on every attempt: mail clients and filters can drop a repeat.
        mail["Message-ID"] = f"<{delivery_id}@leadscore>"
        mail[DELIVERY_HEADER] = delivery_id
        reasons = payload.get("reasons") or []
        lines = [summary(payload), *owner_lines(payload), "", "Why:"]
        owner = payload.get("owner")
        if isinstance(owner, str) and "@" in owner and owner not in self.recipients:
            mail["Cc"] = owner          # the owner routing.yaml assigned (leadscore.sales)
        for reason in reasons if isinstance(reasons, list) else []:
            if isinstance(reason, Mapping):
                lines.append(f"  {reason.get('points', 0):+.1f}  {reason.get('rule')}")
        interested = interests_line(payload)
        if interested:
            lines += ["", interested]
        people = payload.get("people")
        if isinstance(people, list) and people:     # an account handoff
            roles = ", ".join(payload.get("roles_engaged") or []) or "none"
            lines += ["", f"Roles engaged: {roles}", "People:"]
            lines += [f"  {p.get('score', 0):6.1f}  {p.get('email') or p.get('lead_id')}"
                      f"  ({p.get('grade')}, {p.get('temperature')})"
                      for p in people if isinstance(p, Mapping)]
        lines += ["", "The handoff as JSON:", body_bytes(payload).decode("utf-8")]
        mail.set_content("\n".join(lines))
        return mail

    def send(self, delivery_id: str, payload: Mapping[str, Any], attempt: int) -> None:
        if not self.recipients:
            raise DeliveryFailed("smtp_to is empty: no recipient for handoff e-mails")
        mail = self.message(delivery_id, payload)
        try:
            self._server.send(mail, self.timeout)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryFailed(f"{self.name}: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        pass


def owner_lines(payload: Mapping[str, Any]) -> list[str]:
    """`Owner: anna@… (team dach, rule 'dach'), accept by …` when the handoff was routed."""
    owner, team = payload.get("owner"), payload.get("team")
    if not owner and not team:
        return []
    text = f"Owner: {owner or 'nobody free'}"
    details = [f"team {team}"] if team else []
    if payload.get("routing_rule"):
        details.append(f"rule {payload['routing_rule']!r}")
    if details:
        text += f" ({', '.join(details)})"
    if payload.get("accept_by"):
        text += f", accept by {payload['accept_by']}"
    return [text]


def targets_from(settings: Settings) -> list[WebhookTarget | EmailTarget]:
    """The delivery targets the settings configure (webhooks first, then e-mail)."""
    found: list[WebhookTarget | EmailTarget] = [
        WebhookTarget(w.url, w.secret, settings.delivery_timeout_seconds)
        for w in settings.webhooks]
    if settings.smtp_url:
        found.append(EmailTarget(settings.smtp_url, settings.smtp_from, settings.smtp_to,
                                 settings.delivery_timeout_seconds))
    return found
