"""`Scorer.update_many` over many events at once: the fold vectorised per rule with numpy.

The per-event path (`fold_one` + `evaluate`) costs ~12 µs of Python per event. Here a batch is
folded in steps whose work per event is numpy's, not Python's (what is left in Python is per
lead and rule: the state's objects), one module each:

0. `columns`: the events as columns, each lead's events in arrival order.
1. `pairs` (*match*): each model's (event, rule) pairs, with their buckets.
2. `decide`: per lead, in arrival order, which events raise a handoff; leads where that is not
   certain (a score within rounding of the threshold, program events, events spanning more
   than ~900 half-lives, a date an `age_of` fit rule reads) are left to the per-event path.
3. `fold`: the pairs applied to the rule states and sums at once, in segments that end with a
   handoff's event (whose score and reasons are those of the moment it crossed); stages and
   interests per event.

The resulting state is the per-event path's up to rounding in the last bits of the totals.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from leadscore.engine.incremental.fold_many.columns import EventColumns
from leadscore.engine.incremental.fold_many.decide import Decision
from leadscore.engine.incremental.fold_many.fold import ModelFold, apply
from leadscore.engine.incremental.fold_many.pairs import Pairs
from leadscore.model.program_events import NAMES as PROGRAM_EVENTS

if TYPE_CHECKING:
    from leadscore.engine.incremental.scorer import Scorer
    from leadscore.events import Event
    from leadscore.scores import Handoff


def fold_many(scorer: Scorer, events: Sequence[Event]) -> list[Handoff]:
    """Fold `events` (in arrival order) into `scorer`; the handoffs, as `update_many`."""
    if not events:
        return []
    # The fold creates a few objects per (lead, rule), none of them in a reference cycle:
    # the collector would only walk the many live objects again and again (~20 % of the time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _fold_many(scorer, events)
    finally:
        if collecting:
            gc.enable()


def _fold_many(scorer: Scorer, events: Sequence[Event]) -> list[Handoff]:
    book = scorer.book
    batch = EventColumns(book, events)
    slow = np.zeros(batch.leads, bool)       # leads folded by the per-event path
    # Leads with program events: their points change engagement outside the rules.
    for s, (_, name, _) in enumerate(batch.signatures):
        if name in PROGRAM_EVENTS:
            slow[batch.lead[batch.sig == s]] = True
    # Leads with a date an `age_of` fit rule reads: their fit moves with each event's time.
    dated = {rule.age_of for model in book.models.values() for rule in model.fit
             if rule.age_of is not None}
    if dated:
        for i, lead in enumerate(batch.lead_states):
            if any(lead.lead.get(path) is not None for path in dated):
                slow[i] = True
    decisions = [Decision(book, Pairs(batch, dispatch)) for dispatch in book.dispatch.values()]
    handoff_at = np.zeros(batch.n, bool)
    for decision in decisions:
        decision.decide(slow)
    for decision in decisions:
        handoff_at |= decision.handoff_at
    handoff_at &= ~slow[batch.lead]
    folds = [ModelFold(book, decision) for decision in decisions]
    return apply(book, batch, folds, slow, handoff_at)
