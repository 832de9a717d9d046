"""Retry delays: exponential from `base`, capped at `cap`, with jitter so that many failed
deliveries do not come back at the same instant."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 2.0
    cap: float = 3600.0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def ceiling(self, attempts: int) -> float:
        """The longest wait after the `attempts`-th failed attempt (1 = the first):
        `base · 2^(attempts−1)`, never more than `cap` (`delay` without its jitter)."""
        return min(self.cap, self.base * 2.0 ** max(0, min(attempts - 1, 60)))

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt: between half and all of
        its `ceiling`."""
        ceiling = self.ceiling(attempts)
        return ceiling / 2 + self.rng.random() * ceiling / 2
