"""How a program e-mail goes out: the `Mailer` (SMTP server, sender, where links point, the
link secret), the message built from an action's payload (one recipient, one-line subject,
RFC 8058 unsubscribe headers), and the per-process send rate (`TokenBucket`)."""

from __future__ import annotations

import email.policy
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from leadscore.addresses import check_address, header_text
from leadscore.alerts.smtp import SmtpServer

# Header lines up to SMTP's 998 characters: a long unsubscribe URL is folded at white space
# (it has none), not RFC 2047-encoded as the default 78 would have it.
MAIL_POLICY = email.policy.SMTP.clone(max_line_length=998)


@dataclass
class Mailer:
    """Where program e-mails go and how their links are made."""

    smtp_url: str | None
    sender: str = "leadscore@localhost"
    public_url: str = "http://127.0.0.1:8000"
    secret: str | None = None       # `link_secret`: without it no tracked e-mail is made
    timeout: float = 10.0

    def send(self, message: EmailMessage, recipient: str) -> None:
        if not self.smtp_url:
            raise OSError("no SMTP server configured (LEADSCORE_SMTP_URL)")
        SmtpServer.from_url(self.smtp_url).send(message, self.timeout, [recipient])


class TokenBucket:
    """At most `rate` per second on average, bursts of up to `rate` (at least 1)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic):
        self.rate, self.capacity = rate, max(1.0, rate)
        self.clock = clock
        self.tokens, self.at = self.capacity, self.clock()

    def take(self, block: bool = False) -> float | None:
        """Take a token: None when one was there, else the seconds until one is (nothing
        taken). `block`: take it even if that leaves a debt (after waiting)."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1 or block:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.rate


def program_email(key: str, payload: Mapping[str, Any], sender: str
                  ) -> tuple[EmailMessage, str]:
    """The message of a program action `key` and the one address it goes to (ValueError when
    the payload has no valid address)."""
    message = EmailMessage(policy=MAIL_POLICY)
    to, problem = check_address(payload.get("to"))
    if to is None:
        raise ValueError(problem)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = header_text(payload.get("subject") or "")
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@leadscore>"
    message["X-Leadscore-Email"] = key
    # RFC 8058: an ASCII URL in angle brackets, as it is (never RFC 2047-encoded).
    message["List-Unsubscribe"] = f"<{payload['unsubscribe']}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(payload["text"])
    if payload.get("html"):
        message.add_alternative(payload["html"], subtype="html")
    return message, to
