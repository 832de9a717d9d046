"""alerts.smtp: the one SMTP sender's reading of an SMTP URL."""

from __future__ import annotations

from leadscore.alerts.smtp import SmtpServer


def test_smtp_urls() -> None:
    assert SmtpServer.from_url("smtp://mail.example:2525") == SmtpServer("mail.example", 2525)
    assert SmtpServer.from_url("smtp://mail.example") == SmtpServer("mail.example", 25)
    assert SmtpServer.from_url("smtps://u%40x:p%3Aw@mail.example") == SmtpServer(
        "mail.example", 465, True, "u@x", "p:w")
