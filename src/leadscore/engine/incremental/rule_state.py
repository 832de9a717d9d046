"""Per-lead, per-rule state of the incremental engine: small, exact, serialisable.

A rule's decayed total is kept relative to a reference time `ref` (the latest event the rule
has seen): `total = Σ 2^((t − ref) / half_life)` over the events that count. Moving `ref`
forward rescales the total by a factor ≤ 1, so nothing overflows; the contribution at `as_of`
is `points × total × 2^(−(as_of − ref) / half_life)`. Without decay every term is 1 and the
total is a count. `once`, `daily`, `weekly` and `distinct` keep the latest time per bucket, so
a later event of the same bucket replaces the earlier one's term — in any arrival order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from leadscore.timeutil import US_PER_DAY, iso_week, local_day

if TYPE_CHECKING:
    from leadscore.events import Event
    from leadscore.model.compiled import EngagementRule

Bucket = Any  # None (once), a day/week number, a distinct value, or (value, day/week)


def bucket(rule: EngagementRule, event: Event, timezone: str) -> Bucket:
    """The bucket an event falls in for a rule with `limit` and/or `distinct`: the local day or
    ISO week, the distinct value, or both."""
    period: int | None = None
    if rule.limit == "daily":
        period = local_day(event.timestamp, timezone)
    elif rule.limit == "weekly":
        period = iso_week(local_day(event.timestamp, timezone))
    if rule.distinct is None:
        return period
    value = event.get(rule.distinct)
    return value if period is None else (value, period)


def decay_factor(age_us: int, half_life_days: float | None) -> float:
    """2^(−age / half_life): what an event `age_us` old is still worth (1 without decay)."""
    if half_life_days is None:
        return 1.0
    return float(2.0 ** (-age_us / (half_life_days * US_PER_DAY)))


def decayed(points: float, age_us: int, half_life_days: float | None) -> float:
    """What `points` earned `age_us` ago are worth now."""
    return points * decay_factor(age_us, half_life_days)


class RuleState:
    """What one engagement rule has seen for one lead."""

    __slots__ = ("buckets", "last", "matched", "ref", "total")

    def __init__(self) -> None:
        self.ref = 0
        self.total = 0.0
        self.matched = 0
        self.last: int | None = None
        self.buckets: dict[Bucket, int] | None = None

    def add(self, ts: int, half_life: float | None, bucket: Bucket = None,
            bucketed: bool = False) -> int | Literal[False] | None:
        """Fold in one matching event at `ts` (µs).

        Returns what changed among the events that count: False (nothing: an event of its
        bucket is later), None (`ts` was added) or the time of the event `ts` replaced.
        """
        self.matched += 1
        if self.last is None or ts > self.last:
            self.last = ts
        if bucketed:
            buckets = self.buckets
            if buckets is None:
                buckets = self.buckets = {}
            old = buckets.get(bucket)
            if old is not None and old >= ts:
                return False
            buckets[bucket] = ts
            if old is not None:
                if half_life is not None:
                    self._shift(ts, half_life)
                    self.total += decay_factor(self.ref - ts, half_life) - decay_factor(
                        self.ref - old, half_life)
                return old   # without decay one event for one: the count stays
        if half_life is None:
            self.total += 1.0
            return None
        self._shift(ts, half_life)
        self.total += decay_factor(self.ref - ts, half_life)
        return None

    def _shift(self, ts: int, half_life: float) -> None:
        if ts > self.ref:
            self.total *= decay_factor(ts - self.ref, half_life)
            self.ref = ts

    def value(self, as_of: int, half_life: float | None) -> float:
        """The rule's total weight at `as_of` (before points and cap)."""
        if half_life is None:
            return self.total
        return self.total * decay_factor(as_of - self.ref, half_life)

    @property
    def counted(self) -> int:
        return len(self.buckets) if self.buckets is not None else self.matched

    # ---- serialisation (the store persists this)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ref": self.ref, "total": self.total, "matched": self.matched,
                               "last": self.last}
        if self.buckets is not None:
            out["buckets"] = [[_encode(k), v] for k, v in self.buckets.items()]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuleState:
        state = cls()
        state.ref, state.total = int(data["ref"]), float(data["total"])
        state.matched, state.last = int(data["matched"]), data.get("last")
        if "buckets" in data:
            state.buckets = {_decode(k): int(v) for k, v in data["buckets"]}
        return state


def _encode(key: Bucket) -> Any:
    return list(key) if isinstance(key, tuple) else key


def _decode(key: Any) -> Bucket:
    return tuple(key) if isinstance(key, list) else key


class DecayedSum:
    """Σ points × 2^((t − ref) / half_life) over terms added and removed, in any time order.

    The incremental engine keeps one per half-life for the rules without a cap, so a score
    costs one term per half-life instead of one per rule.
    """

    __slots__ = ("ref", "total")

    def __init__(self) -> None:
        self.ref = 0
        self.total = 0.0

    def add(self, points: float, ts: int, half_life: float | None) -> None:
        if half_life is None:
            self.total += points
            return
        if ts > self.ref:
            self.total *= decay_factor(ts - self.ref, half_life)
            self.ref = ts
        self.total += points * decay_factor(self.ref - ts, half_life)

    def value(self, as_of: int, half_life: float | None) -> float:
        if half_life is None:
            return self.total
        return self.total * decay_factor(as_of - self.ref, half_life)
