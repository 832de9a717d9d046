"""Step 1 of the vectorised fold, *match*: one model's (event, rule) pairs of a batch.

Rules are matched once per distinct (type, event, path) signature, as the batch plan does
(`engine.sql.signatures`), through the model's rule dispatch (its cache of page paths); a rule's
`where` is evaluated once per distinct value of the paths it reads. Each pair gets its bucket
(day, week, distinct value) for the rules with `limit` or `distinct`, as an int64 code.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from leadscore.engine.incremental.fold_many.columns import (
    Array,
    EventColumns,
    encode,
    getter,
    holds,
    local_days,
    once_keys,
    period_keys,
    value_keys,
    value_period_keys,
)
from leadscore.timeutil import ISO_WEEK_SHIFT_DAYS

if TYPE_CHECKING:
    from leadscore.engine.incremental.dispatch import Dispatch
    from leadscore.model.compiled import CompiledModel, EngagementRule


def days(half_life: float | None) -> float:
    """A half-life in days; 0 for none."""
    return 0.0 if half_life is None else float(half_life)


class Pairs:
    """One model's (event, rule) pairs: `k` the event, `r` the rule, by lead, then arrival,
    then rule; with each pair's lead, time and bucket code (`decode` turns codes back into the
    buckets `RuleState` keeps)."""

    def __init__(self, batch: EventColumns, dispatch: Dispatch):
        self.batch = batch
        self.model: CompiledModel = dispatch.model
        self.dispatch = dispatch
        model = self.model
        rules = model.rules
        self.points = np.array([r.points for r in rules] or [0.0], float)
        self.half_life = np.array([days(r.half_life_days) for r in rules] or [0.0], float)
        events = batch.events
        # rules matched per signature, each event repeated for its signature's rules; then
        # `where`, per distinct value
        flat: list[int] = []
        count = np.zeros(len(batch.signatures), np.int64)
        wheres: set[int] = set()
        for s, (kind, name, path) in enumerate(batch.signatures):
            matched = dispatch.rules_of(kind, name, path)
            count[s] = len(matched)
            flat.extend(rule.index for rule in matched)
            wheres.update(rule.index for rule in matched if rule.matcher.where is not None)
        per_event = count[batch.sig]
        k = np.repeat(np.arange(batch.n), per_event)
        first = np.cumsum(count) - count
        within = np.arange(len(k)) - np.repeat(np.cumsum(per_event) - per_event, per_event)
        r = np.array(flat, np.int64)[first[batch.sig[k]] + within] if len(k) else k
        keep = np.ones(len(k), bool)
        for index in sorted(wheres):
            at = np.flatnonzero(r == index)
            keep[at] = holds(rules[index].matcher.where, events, k[at])  # type: ignore[arg-type]
        k, r = k[keep], r[keep]
        # by lead, then arrival (the events' place in `batch.order`), then rule
        place = np.empty(batch.n, np.int64)
        place[batch.order] = np.arange(batch.n)
        order = np.argsort(place[k] * max(len(rules), 1) + r)
        self.k, self.r = k[order], r[order]
        self.pair_lead = batch.lead[self.k]
        self.t = batch.ts[self.k]
        self.bucket = np.zeros(len(self.k), np.int64)
        self.decode: dict[int, Callable[[Array], list[Any]]] = {}
        for rule in rules:
            if rule.bucketed:
                self._buckets(rule)

    def _buckets(self, rule: EngagementRule) -> None:
        """Each pair's bucket for a rule with `limit` and/or `distinct`, as an int64 code."""
        at = np.flatnonzero(self.r == rule.index)
        if not len(at):
            return
        ts = self.t[at]
        period: Array | None = None
        low = 0
        if rule.limit in ("daily", "weekly"):
            period = local_days(ts, self.model.timezone)
            if rule.limit == "weekly":
                period = (period + ISO_WEEK_SHIFT_DAYS) // 7
            low = int(period.min())
            period = period - low
        if rule.distinct is None:
            if period is None:          # `once`: one bucket, None
                self.decode[rule.index] = once_keys
            else:
                self.bucket[at] = period
                self.decode[rule.index] = partial(period_keys, low)
            return
        chosen = list(map(self.batch.events.__getitem__, self.k[at].tolist()))
        root, _, key = rule.distinct.partition(".")
        if root == "properties" and key and "." not in key:
            values = [event.properties.get(key) for event in chosen]
        else:
            values = list(map(getter(rule.distinct), chosen))
        names, codes = encode(values)
        if period is None:
            self.bucket[at] = codes
            self.decode[rule.index] = partial(value_keys, names)
        else:
            self.bucket[at] = (codes << 32) | period
            self.decode[rule.index] = partial(value_period_keys, names, low)
