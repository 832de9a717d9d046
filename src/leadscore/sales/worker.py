"""The server's sales round, every `SWEEP_SECONDS` in a thread: SLAs (`sla.sweep`) and the
expiry of manual adjustments (`SalesDesk.expire_due`)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from leadscore.sales.sla import SWEEP_SECONDS, sweep

log = logging.getLogger("leadscore.sales")


class SalesWorker:
    def __init__(self, service: Any, seconds: float = SWEEP_SECONDS,
                 wake: Any = None):
        self.service, self.seconds, self.wake = service, seconds, wake
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def round(self) -> dict[str, int]:
        done = sweep(self.service.db, self.service.ingest,
                     on_recycled=self.service.sales.after_recycle)
        expired = self.service.sales.expire_due()
        if expired:
            done["expired"] = expired
        if done and self.wake is not None:
            self.wake()           # a second handoff to deliver
        if done:
            log.info("sales round", extra=done)
        return done

    def run(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self.round()
            except Exception:  # the store away for a moment: try again next round
                log.exception("the sales round failed")

    def start(self) -> SalesWorker:
        self._thread = threading.Thread(target=self.run, name="leadscore-sales", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
