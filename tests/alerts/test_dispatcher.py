"""The dispatcher against a real HTTP receiver on 127.0.0.1 (an in-memory outbox with the
store's claim semantics; tests/api covers the real store end to end)."""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import pytest

from leadscore.alerts import Backoff, Dispatcher, WebhookTarget, sign, verify
from leadscore.alerts.payload import body_bytes
from leadscore.timeutil import US_PER_SECOND, now_us
from tests.alerts.receiver import Receiver


@dataclass(frozen=True)
class Item:
    id: str
    payload: dict[str, Any]
    status: str = "pending"
    attempts: int = 0
    next_attempt_at: int | None = 0
    lease_until: int | None = None
    last_error: str | None = None


class Outbox:
    """The outbox contract: claim leases due items and counts an attempt."""

    def __init__(self, n: int):
        self.items = {f"h{i}": Item(f"h{i}", {"lead": {"id": f"lead-{i}"}, "model": "m",
                                              "score": 40 + i, "grade": "B"})
                      for i in range(n)}
        self.lock = threading.Lock()

    def claim_due(self, limit: int, now: int) -> list[Item]:
        with self.lock:
            due = [i for i in self.items.values() if i.status != "delivered"
                   and i.next_attempt_at is not None and i.next_attempt_at <= now
                   and (i.lease_until is None or i.lease_until <= now)][:limit]
            for item in due:
                self.items[item.id] = replace(item, attempts=item.attempts + 1,
                                              lease_until=now + 60 * US_PER_SECOND)
            return [self.items[i.id] for i in due]

    def mark_delivered(self, item_id: str) -> None:
        with self.lock:
            self.items[item_id] = replace(self.items[item_id], status="delivered",
                                          lease_until=None)

    def mark_failed(self, item_id: str, error: str, next_attempt_at: int | None) -> None:
        with self.lock:
            self.items[item_id] = replace(self.items[item_id], status="failed",
                                          last_error=error, next_attempt_at=next_attempt_at,
                                          lease_until=None)


def test_backoff_is_exponential_jittered_and_capped() -> None:
    backoff = Backoff(base=1, cap=30, rng=random.Random(1))
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (5, 16), (6, 30), (40, 30), (500, 30)]:
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # jittered


def test_signature_is_hmac_sha256_of_the_timestamp_and_the_exact_body() -> None:
    """Before: `sha256=<HMAC of the body>` — a captured delivery could be replayed for
    ever."""
    import hashlib
    import hmac

    body = body_bytes({"b": 1, "a": "é"})
    t = int(time.time())
    assert sign(body, "s3", t) == f"t={t},v1=" + hmac.new(
        b"s3", f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    assert verify(body, "s3", sign(body, "s3"))
    assert not verify(body + b" ", "s3", sign(body, "s3"))
    assert not verify(body, "other", sign(body, "s3"))
    assert not verify(body, "", sign(body, ""))
    # A replay outside the tolerance (5 minutes either way) is refused.
    assert verify(body, "s3", sign(body, "s3", t - 299))
    assert not verify(body, "s3", sign(body, "s3", t - 301))
    assert not verify(body, "s3", sign(body, "s3", t + 301))
    # The timestamp is signed: moving it breaks the signature.
    moved = sign(body, "s3", t - 1000).replace(f"t={t - 1000}", f"t={t}")
    assert not verify(body, "s3", moved)
    assert not verify(body, "s3", "sha256=" + hmac.new(b"s3", body, hashlib.sha256).hexdigest())


def test_a_receiver_down_for_a_while_gets_every_handoff_once() -> None:
    receiver = Receiver("s3cret")          # not started: connection refused
    outbox = Outbox(30)
    target = WebhookTarget(receiver.url, "s3cret", timeout=2)
    dispatcher = Dispatcher(outbox, [target], poll_seconds=0.02, batch_size=7,
                            backoff=Backoff(base=0.05, cap=0.3)).start()
    try:
        time.sleep(0.5)
        failed = [i for i in outbox.items.values() if i.status == "failed"]
        assert failed and all(i.last_error and "ConnectError" in i.last_error for i in failed)
        assert max(i.attempts for i in outbox.items.values()) >= 2
        receiver.start()
        receiver.fail_with = 503           # up but failing
        time.sleep(0.4)
        assert "HTTP 503" in (next(iter(outbox.items.values())).last_error or "")
        receiver.fail_with = None
        assert receiver.wait_for(30)
        deadline = time.time() + 10
        while time.time() < deadline and any(i.status != "delivered"
                                             for i in outbox.items.values()):
            time.sleep(0.02)
    finally:
        dispatcher.stop()
        receiver.stop()
    assert all(i.status == "delivered" for i in outbox.items.values())
    assert set(receiver.counts) == set(outbox.items)          # none lost
    assert max(receiver.counts.values()) == 1                 # none twice under one id
    assert receiver.bad_signatures == 0
    assert receiver.bodies["h3"] == {"lead": {"id": "lead-3"}, "model": "m", "score": 43,
                                     "grade": "B"}


def test_a_failing_target_does_not_resend_to_one_that_took_the_item() -> None:
    good, bad = Receiver("a").start(), Receiver("b")
    outbox = Outbox(3)
    dispatcher = Dispatcher(outbox, [WebhookTarget(good.url, "a", 2),
                                     WebhookTarget(bad.url, "b", 2)],
                            backoff=Backoff(base=0.01, cap=0.02))
    try:
        for _ in range(4):
            dispatcher.deliver_due()
            time.sleep(0.05)
        bad.start()
        for _ in range(4):
            dispatcher.deliver_due()
            time.sleep(0.05)
    finally:
        dispatcher.stop()
        good.stop()
        bad.stop()
    assert dict(good.counts) == {"h0": 1, "h1": 1, "h2": 1}
    assert dict(bad.counts) == {"h0": 1, "h1": 1, "h2": 1}
    assert all(i.status == "delivered" and i.attempts >= 2 for i in outbox.items.values())


def test_failure_schedules_the_next_attempt_with_backoff() -> None:
    outbox = Outbox(1)
    now = now_us()
    dispatcher = Dispatcher(outbox, [WebhookTarget(Receiver("x").url, "x", 1)],
                            backoff=Backoff(base=10, cap=100), clock=lambda: now)
    dispatcher.deliver_due()
    item = outbox.items["h0"]
    assert item.status == "failed" and item.attempts == 1
    assert item.next_attempt_at is not None
    assert now + 5 * US_PER_SECOND <= item.next_attempt_at <= now + 10 * US_PER_SECOND
    assert dispatcher.deliver_due() == 0    # not due yet


@pytest.mark.parametrize("payload", [{"lead": "x", "reasons": [{"rule": "r", "points": 1.5}]}])
def test_body_is_compact_sorted_json(payload: dict[str, Any]) -> None:
    assert json.loads(body_bytes(payload)) == payload
    assert body_bytes(payload) == body_bytes(dict(reversed(payload.items())))
