"""Handoff e-mail over SMTP, against a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import email
from typing import Any

import pytest

from leadscore.alerts import DeliveryFailed, EmailTarget
from leadscore.alerts.targets import targets_from
from leadscore.config import load_settings
from tests.alerts.receiver import free_port

aiosmtpd = pytest.importorskip("aiosmtpd.controller")


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp() -> Any:
    inbox = Inbox()
    controller = aiosmtpd.Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


PAYLOAD = {"lead": {"id": "ann"}, "model": "art-shop", "score": {"score": 41.5, "grade": "B"},
           "reasons": [{"rule": "store locator", "points": 20.0},
                       {"rule": "core age band", "points": 10}],
           "interests": [{"topic": "painting", "weight": 5}]}


def test_handoff_email_reaches_a_real_smtp_server(smtp: Any) -> None:
    controller, inbox = smtp
    target = EmailTarget(f"smtp://127.0.0.1:{controller.port}", "leadscore@example.org",
                         ("sales@example.org",), timeout=5)
    target.send("handoff-1", PAYLOAD, 1)
    assert len(inbox.messages) == 1
    envelope = inbox.messages[0]
    assert envelope.rcpt_tos == ["sales@example.org"]
    mail = email.message_from_bytes(envelope.content)
    assert mail["Subject"] == "ann is an MQL under art-shop: score 41.5, grade B"
    assert mail["Message-ID"] == "<handoff-1@leadscore>"
    text = mail.get_payload(decode=True).decode()
    assert "+20.0  store locator" in text and "painting" in text


def test_smtp_down_is_a_delivery_failure() -> None:
    target = EmailTarget(f"smtp://127.0.0.1:{free_port()}", "a@b", ("c@d",), timeout=2)
    with pytest.raises(DeliveryFailed, match="ConnectionRefused"):
        target.send("x", PAYLOAD, 1)


def test_smtp_url_from_the_environment(smtp: Any) -> None:
    controller, _ = smtp
    settings = load_settings(env={"LEADSCORE_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
                                  "LEADSCORE_SMTP_TO": "a@example.org, b@example.org"})
    [target] = targets_from(settings)
    assert isinstance(target, EmailTarget) and target.recipients == ("a@example.org",
                                                                     "b@example.org")


def test_a_routed_handoff_email_names_its_owner_and_copies_them(smtp: Any) -> None:
    controller, inbox = smtp
    target = EmailTarget(f"smtp://127.0.0.1:{controller.port}", "leadscore@example.org",
                         ("sales@example.org",), timeout=5)
    routed = {**PAYLOAD, "owner": "anna@shop.example", "team": "dach", "routing_rule": "dach",
              "accept_by": "2026-05-02T09:00:00Z"}
    target.send("handoff-2", routed, 1)
    envelope = inbox.messages[0]
    assert sorted(envelope.rcpt_tos) == ["anna@shop.example", "sales@example.org"]
    text = email.message_from_bytes(envelope.content).get_payload(decode=True).decode()
    assert ("Owner: anna@shop.example (team dach, rule 'dach'), accept by "
            "2026-05-02T09:00:00Z") in text
