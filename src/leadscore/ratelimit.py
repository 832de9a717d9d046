"""Token buckets by key (a write key, a client address), in process memory.

A bucket holds up to `burst` tokens and gains `rate` a second. Taking `n` tokens succeeds when
the bucket holds at least `min(n, burst)` (a request larger than the burst passes when the
bucket is full) and may leave it below zero: the debt is paid back before the next request
passes, so the long-run rate holds whatever the request sizes. Each worker process keeps its
own buckets: with N workers a client may get up to N times the rate.
"""

from __future__ import annotations

import math
import threading
import time


class Buckets:
    """Token buckets by key; `rate` <= 0 means no limit."""

    def __init__(self, rate: float, burst: float | None = None, *, max_keys: int = 100_000):
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(rate, 1.0))
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}     # key -> (tokens, at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.rate)

    def wait(self, key: str, n: float = 1, now: float | None = None) -> float:
        """Seconds until `n` tokens could be taken (0: now), taking nothing."""
        if not self.enabled:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            return self._shortfall(self._level(key, now), n)

    def take(self, key: str, n: float = 1, now: float | None = None) -> float:
        """Take `n` tokens and return 0, or take none and return the seconds to wait."""
        if not self.enabled:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            level = self._level(key, now)
            short = self._shortfall(level, n)
            if short:
                return short
            if len(self._buckets) >= self.max_keys and key not in self._buckets:
                self._forget_full(now)
            self._buckets[key] = (level - n, now)
            return 0.0

    def _shortfall(self, level: float, n: float) -> float:
        need = min(n, self.burst)
        return 0.0 if level >= need else (need - level) / self.rate

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled (they equal a new one); if none has, the
        oldest half, so memory stays bounded whatever the number of client addresses."""
        full = [k for k in self._buckets if self._level(k, now) >= self.burst]
        if not full:
            by_age = sorted(self._buckets, key=lambda k: self._buckets[k][1])
            full = by_age[:len(by_age) // 2]
        for key in full:
            del self._buckets[key]


def retry_after(seconds: float) -> str:
    """A Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
