"""The dispatcher: claims due handoffs from the outbox and delivers each to every target.

At-least-once: an item is marked delivered only after every target took it; a failure records
the error and the attempt and schedules the next one with exponential backoff. Every attempt
carries the same delivery id (the outbox item's), so receivers deduplicate. Within one process,
a target that already took an item is not sent it again when another target's failure makes the
item come back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from leadscore.alerts.backoff import Backoff
from leadscore.alerts.targets import DeliveryFailed, Target
from leadscore.store.outbox import LEASE_US
from leadscore.timeutil import US_PER_SECOND, now_us

log = logging.getLogger("leadscore.alerts")


class Dispatcher:
    """Deliver due outbox items; `run` loops until stopped, `deliver_due` does one round."""

    def __init__(self, service: Any, targets: Sequence[Target], *, poll_seconds: float = 0.2,
                 batch_size: int = 20, backoff: Backoff | None = None,
                 clock: Callable[[], int] = now_us, max_attempts: int = 10):
        self.service, self.targets = service, list(targets)
        self.poll_seconds, self.batch_size = poll_seconds, batch_size
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.max_attempts = max_attempts
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._taken: dict[str, set[str]] = {}     # item id → names of targets that took it

    def wake(self) -> None:
        """Look for due items now (called when a handoff was just written)."""
        self._wake.set()

    def deliver_due(self) -> int:
        """Claim the due items and try each once; returns how many were tried."""
        if not self.targets:
            return 0
        claimed = self.clock()
        items = self.service.claim_due(self.batch_size, claimed)
        for item in items:
            if self._stop.is_set() and self._thread is not None:
                break
            # Slow targets: start no item so late that its lease could run out while it is
            # delivered (another worker would take it too); the rest wait for the lease to end.
            if self.clock() - claimed > LEASE_US // 2:
                break
            self.deliver(item)
        return len(items)

    def deliver(self, item: Any) -> bool:
        item_id = str(_field(item, "id"))
        payload: Mapping[str, Any] = _field(item, "payload") or {}
        attempt = max(1, int(_field(item, "attempts") or 0))   # the claim counted it
        taken = self._taken.setdefault(item_id, set())
        failures = []
        for target in self.targets:
            if target.name in taken:
                continue
            try:
                target.send(item_id, payload, attempt)
            except DeliveryFailed as exc:
                failures.append(str(exc))
            except Exception as exc:  # a bug in a target must not stop the others
                log.exception("delivery of %s to %s failed", item_id, target.name)
                failures.append(f"{target.name}: {type(exc).__name__}: {exc}")
            else:
                taken.add(target.name)
        if not failures:
            self.service.mark_delivered(item_id)
            self._taken.pop(item_id, None)
            log.info("handoff delivered", extra={"delivery": item_id, "attempt": attempt})
            return True
        error = "; ".join(failures)
        if attempt >= self.max_attempts:       # a dead letter, not retried for ever
            self.service.mark_dead(item_id, error)
            self._taken.pop(item_id, None)
            log.error("handoff delivery dead after %d attempts", attempt, extra={
                "delivery": item_id, "attempt": attempt, "error": error})
            return False
        delay = self.backoff.delay(attempt)
        self.service.mark_failed(item_id, error, self.clock() + round(delay * US_PER_SECOND))
        log.warning("handoff delivery failed", extra={
            "delivery": item_id, "attempt": attempt, "error": error,
            "retry_in_s": round(delay, 1)})
        return False

    def run(self) -> None:
        """Deliver until `stop()`; an item in flight at stop is finished (or left due)."""
        while not self._stop.is_set():
            try:
                busy = self.deliver_due() >= self.batch_size
            except Exception:
                log.exception("dispatcher round failed; retrying")
                busy = False
            if not busy:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()

    def start(self) -> Dispatcher:
        self._thread = threading.Thread(target=self.run, name="leadscore-dispatcher",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for target in self.targets:
            close = getattr(target, "close", None)
            if close is not None:
                close()


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)
