"""A real server (uvicorn on 127.0.0.1) with its programs, and a real SMTP server (aiosmtpd)
recording each message's envelope and raw bytes: what the e-mail safety tests run against."""

from __future__ import annotations

import email.policy
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from leadscore.api.app import create_app
from leadscore.config import Settings, hash_token
from leadscore.filters import Filters
from leadscore.programs.live import Lifecycle, open_lifecycle
from leadscore.programs.scheduler import journey_rows
from leadscore.service import Service
from leadscore.timeutil import iso, now_us
from tests.alerts.receiver import free_port

PUBLIC_KEY, SERVER_KEY, ADMIN = "wk_public", "wk_server", "adm_secret"


@dataclass
class Received:
    sender: str
    recipients: list[str]
    raw: bytes
    at: float = field(default_factory=time.monotonic)

    @property
    def message(self) -> Message:
        return message_from_bytes(self.raw, policy=email.policy.default)


@dataclass
class Inbox:
    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      bytes(envelope.original_content or envelope.content)))
        return "250 OK"


@dataclass
class Live:
    service: Service
    life: Lifecycle
    inbox: Inbox
    base: str
    settings: Settings

    def ingest(self, *messages: dict[str, Any], key: str = PUBLIC_KEY) -> httpx.Response:
        response = httpx.post(f"{self.base}/v1/batch", json={"batch": list(messages)},
                              auth=(key, ""))
        assert response.status_code == 200, response.text
        return response

    def admin(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.base}{path}", json=body,
                          headers={"Authorization": f"Bearer {ADMIN}"})

    def run(self, now: int | None = None) -> None:
        self.life.run_once(now)
        self.life.scheduler.deliver(now)

    def journey(self, lead: str) -> list[tuple[str, str | None]]:
        with self.service.db.read() as connection:
            return [(j["action"], j["detail"]) for j in journey_rows(connection, None, lead)]

    def count(self, event: str) -> int:
        with self.service.db.read() as connection:
            return int(connection.exec_driver_sql(
                "SELECT count(*) FROM events WHERE event = ?"
                if self.service.db.dialect == "sqlite" else
                "SELECT count(*) FROM events WHERE event = %s", (event,)).scalar() or 0)


@contextmanager
def live_mail(root: Path, db_url: str, **changes: Any) -> Iterator[Live]:
    """The world in `root` served over HTTP, e-mail going to a real SMTP server; `changes`
    are settings (e.g. `link_secret=None`)."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    smtp_port, port = free_port(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    settings = replace(Settings(
        db=db_url, models_dir=str(root / "models"), smtp_url=f"smtp://127.0.0.1:{smtp_port}",
        host="127.0.0.1", port=port, public_url=f"http://127.0.0.1:{port}",
        link_secret="s3cret", log_requests=False, write_keys=(PUBLIC_KEY, SERVER_KEY),
        trusted_write_keys=(SERVER_KEY,), admin_token_sha256=hash_token(ADMIN),
        # These tests follow links with httpx as soon as the mail is in, standing in for a
        # person: the filters on who follows a link (a crawler, a mail gateway's scanner)
        # are off unless a test asks for them (tests/filters/test_link_scanners.py does).
        filters=Filters(bots=False, link_scanners=False)), **changes)
    service = Service.open(db_url, models_dir=root / "models", background=False,
                           filters=settings.filters)
    app = create_app(settings, service)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        life = app.state.lifecycle = open_lifecycle(service, settings, folder=root)
        yield Live(service, life, inbox, f"http://127.0.0.1:{port}", settings)
    finally:
        server.should_exit = True
        thread.join(10)
        service.close()
        controller.stop()


def mailed(live: Live) -> tuple[str, str, str]:
    """(click, open, unsubscribe) links of ann's welcome e-mail (its template `hello.html`
    links once)."""
    t = iso(now_us())
    live.ingest({"type": "identify", "userId": "ann", "messageId": "i1", "timestamp": t,
                 "traits": {"email": "ann@x.example", "first_name": "Ann"}},
                {"type": "track", "userId": "ann", "messageId": "s1", "timestamp": t,
                 "event": "Newsletter Subscribed"})
    live.run()
    [mail] = live.inbox.received
    html = mail.message.get_body(("html",)).get_content()
    click = re.search(r'href="([^"]+/t/c/[^"]+)"', html)
    pixel = re.search(r'src="([^"]+/t/o/[^"]+)"', html)
    assert click and pixel
    return click.group(1), pixel.group(1), str(mail.message["List-Unsubscribe"]).strip("<>")
