"""The one SMTP sender: handoff e-mails to sales (`targets.EmailTarget`) and program e-mails
(`programs.scheduler.Mailer`) both go out through `SmtpServer.send`.

Transport security: `smtps://` verifies the server's certificate and name; `smtp://` upgrades
with STARTTLS whenever the server offers it (verified the same way), and never sends a password
over a connection that is not encrypted, except to a server on this machine. `?cafile=PATH`
trusts a private certificate authority (or a self-signed server certificate)."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class SmtpServer:
    """Where e-mail goes, from `smtp://[user:password@]host:port` (`smtps://` for TLS; the port
    defaults to 465 with TLS, else 25)."""

    host: str
    port: int
    tls: bool = False
    user: str | None = None
    password: str = ""
    cafile: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        tls = parts.scheme == "smtps"
        found = parse_qs(parts.query).get("cafile")
        cafile = found[0] if found else None
        return cls(parts.hostname or "localhost", parts.port or (465 if tls else 25), tls,
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else "", cafile)

    def context(self) -> ssl.SSLContext:
        """Certificate and host name verified (the system's CAs, or `cafile`)."""
        return ssl.create_default_context(cafile=self.cafile)

    def send(self, message: EmailMessage, timeout: float,
             recipients: list[str] | None = None) -> None:
        """Deliver one message in an SMTP session of its own (logged in where the URL names a
        user) to `recipients` exactly where given (else the message's To/Cc); raises OSError
        or smtplib.SMTPException when it cannot."""
        if self.tls:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=timeout,
                                                  context=self.context())
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=timeout)
        with smtp:
            encrypted = self.tls
            if not self.tls:
                smtp.ehlo()
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=self.context())
                    smtp.ehlo()
                    encrypted = True
            if self.user:
                if not encrypted and self.host not in LOCAL_HOSTS:
                    raise OSError(f"SMTP server {self.host} offers no TLS: the password is "
                                  "not sent in clear (use smtps://, or a server with STARTTLS)")
                smtp.login(self.user, self.password)
            smtp.send_message(message, to_addrs=recipients)
