"""A real SMTP server (aiosmtpd) on 127.0.0.1 counting what it receives: program e-mails by
`X-Leadscore-Email` (enrolment and step), handoff e-mails to sales by delivery id
(`Message-ID: <id@leadscore>`)."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from typing import Any

from tests.alerts.receiver import free_port


class Inbox:
    """`pause`: seconds before accepting each message (so that a kill lands mid-run)."""

    def __init__(self, pause: float = 0.0) -> None:
        self.pause = pause
        self.keys: Counter[str] = Counter()
        self.handoffs: Counter[str] = Counter()
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.pause:
            await asyncio.sleep(self.pause)
        message = message_from_bytes(envelope.content)
        with self.lock:
            if message["X-Leadscore-Email"] is None:
                self.handoffs[str(message["Message-ID"]).strip("<>").split("@")[0]] += 1
            else:
                self.keys[str(message["X-Leadscore-Email"])] += 1
        return "250 OK"

    def distinct(self) -> int:
        with self.lock:
            return len(self.keys)

    def total(self) -> int:
        with self.lock:
            return sum(self.keys.values())


@contextmanager
def serving(box: Inbox) -> Iterator[tuple[Inbox, int]]:
    """The inbox behind an SMTP server on a free port of 127.0.0.1: (inbox, port)."""
    from aiosmtpd.controller import Controller

    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()
