"""Program e-mail end to end: a real SMTP server (aiosmtpd) on 127.0.0.1 receives the
messages, the tracked link and the unsubscribe link are followed over HTTP against a real
server, and the events they raise are scored; the unsubscribed lead leaves the program and
is never e-mailed again."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from leadscore.api.app import create_app
from leadscore.config import Settings
from leadscore.filters import Filters
from leadscore.programs.live import open_lifecycle
from leadscore.programs.scheduler import journey_rows
from leadscore.service import Service
from leadscore.timeutil import US_PER_DAY, iso, now_us
from tests.alerts.receiver import free_port
from tests.programs.world import write_world

aiosmtpd = pytest.importorskip("aiosmtpd.controller")


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    box = Inbox()
    port = free_port()
    controller = aiosmtpd.Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def _body(message: Any) -> str:
    part = message.get_body(("plain",)) if hasattr(message, "get_body") else message
    return str(part.get_payload(decode=True).decode())


def test_links_in_a_received_email_raise_scored_events(tmp_path: Path, db_url: str,
                                                       inbox: tuple[Inbox, int]) -> None:
    box, smtp_port = inbox
    root = write_world(tmp_path)
    port = free_port()
    settings = Settings(db=db_url, models_dir=str(root / "models"),
                        smtp_url=f"smtp://127.0.0.1:{smtp_port}", host="127.0.0.1", port=port,
                        public_url=f"http://127.0.0.1:{port}", link_secret="s3cret",
                        log_requests=False)
    # httpx clicks as soon as the mail is in, standing in for a person: the filters on who
    # follows a link (crawlers, mail gateways' scanners) are tests/filters/' concern.
    service = Service.open(db_url, models_dir=root / "models", background=False,
                           filters=Filters(bots=False, link_scanners=False))
    app = create_app(settings, service)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        life = open_lifecycle(service, settings, folder=root)
        app.state.lifecycle = life
        t0 = now_us()
        service.ingest([
            {"type": "identify", "userId": "ann", "messageId": "m1", "timestamp": iso(t0),
             "traits": {"email": "ann@example.org", "first_name": "Ann"}},
            {"type": "track", "userId": "ann", "messageId": "m2", "timestamp": iso(t0),
             "event": "Newsletter Subscribed"}])
        life.run_once()
        assert len(box.messages) == 1
        mail = box.messages[0]
        assert mail["Subject"] == "Welcome, Ann!" and mail["To"] == "ann@example.org"
        body = _body(mail)
        click = re.search(r"Start here: (\S+)", body)
        unsub = re.search(r"Unsubscribe: (\S+)", body)
        assert click and unsub
        # A forged link is refused.
        assert httpx.get(click.group(1)[:-3] + "abc").status_code == 404
        response = httpx.get(click.group(1), follow_redirects=False)
        assert response.status_code == 302
        assert response.headers["location"] == "https://shop.example/oil"
        lead = service.get_lead("ann", "shop")
        assert any(r["rule"] == "clicked" and r["points"] > 6 for r in lead["reasons"])
        assert httpx.get(unsub.group(1)).status_code == 200      # the page with its button
        assert httpx.post(unsub.group(1)).status_code == 200
        lead = service.get_lead("ann", "shop")
        assert any(r["rule"] == "unsubscribed" for r in lead["reasons"])
        # The next step comes due: the lead exits, no reminder is sent.
        life.run_once(now_us() + 2 * US_PER_DAY)
        life.scheduler.deliver(now_us() + 2 * US_PER_DAY)
        assert len(box.messages) == 1
        with service.db.read() as connection:
            journey = journey_rows(connection, "welcome", "ann")
        assert [(j["action"], j["detail"]) for j in journey][-1] == ("exit", "unsubscribed")
        assert journey[0]["detail"] == "template=hello content=oil-guide"
    finally:
        server.should_exit = True
        thread.join(10)
        service.close()
