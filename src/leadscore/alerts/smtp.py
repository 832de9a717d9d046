"""The one SMTP sender: handoff e-mails to sales (`targets.EmailTarget`) and program e-mails
(`programs.scheduler.Mailer`) both go out through `SmtpServer.send`."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class SmtpServer:
    """Where e-mail goes, from `smtp://[user:password@]host:port` (`smtps://` for TLS; the port
    defaults to 465 with TLS, else 25)."""

    host: str
    port: int
    tls: bool = False
    user: str | None = None
    password: str = ""

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        tls = parts.scheme == "smtps"
        return cls(parts.hostname or "localhost", parts.port or (465 if tls else 25), tls,
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else "")

    def send(self, message: EmailMessage, timeout: float,
             recipients: list[str] | None = None) -> None:
        """Deliver one message in an SMTP session of its own (logged in where the URL names a
        user) to `recipients` exactly where given (else the message's To/Cc); raises OSError
        or smtplib.SMTPException when it cannot."""
        smtp_class = smtplib.SMTP_SSL if self.tls else smtplib.SMTP
        with smtp_class(self.host, self.port, timeout=timeout) as smtp:
            if self.user:
                smtp.login(self.user, self.password)
            smtp.send_message(message, to_addrs=recipients)
