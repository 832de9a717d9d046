"""alerts.smtp: the one SMTP sender's reading of an SMTP URL, and its transport security
(STARTTLS taken when offered, certificates verified)."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from leadscore.alerts.smtp import SmtpServer
from tests.alerts.receiver import free_port


def test_smtp_urls() -> None:
    assert SmtpServer.from_url("smtp://mail.example:2525") == SmtpServer("mail.example", 2525)
    assert SmtpServer.from_url("smtp://mail.example") == SmtpServer("mail.example", 25)
    assert SmtpServer.from_url("smtps://u%40x:p%3Aw@mail.example") == SmtpServer(
        "mail.example", 465, True, "u@x", "p:w")


# ---- transport security, against a real SMTP server (aiosmtpd) with STARTTLS


class Box:
    def __init__(self) -> None:
        self.tls: list[bool] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.tls.append(session.ssl is not None)
        return "250 OK"


@pytest.fixture
def starttls_server(tmp_path: Path) -> Iterator[tuple[Box, int, Path]]:
    controller_module = pytest.importorskip("aiosmtpd.controller")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    box, port = Box(), free_port()
    controller = controller_module.Controller(box, hostname="127.0.0.1", port=port,
                                              tls_context=context)
    controller.start()
    try:
        yield box, port, cert
    finally:
        controller.stop()


def _message() -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@x.example", "b@y.example", "hi"
    message.set_content("hello")
    return message


def test_smtp_upgrades_with_starttls_and_verifies_the_certificate(
        starttls_server: tuple[Box, int, Path]) -> None:
    box, port, cert = starttls_server
    SmtpServer.from_url(f"smtp://127.0.0.1:{port}?cafile={cert}").send(_message(), 10)
    assert box.tls == [True]                     # the message went over TLS
    with pytest.raises(ssl.SSLCertVerificationError):     # an unknown CA is refused
        SmtpServer.from_url(f"smtp://127.0.0.1:{port}").send(_message(), 10)
    assert box.tls == [True]
