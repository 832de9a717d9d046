"""Lifecycle stages: order-independent, so late and out-of-order events give the same stage.

See docs/model-format.md, "lifecycle": the latest `back: true` event (ties: the lowest stage)
sets the stage; forward events strictly after it can only raise it; `when` rules on traits and
the MQL threshold raise it further. A program's `Lifecycle Stage Set` event (`set_at`: its time and
stage rank, the latest, ties: the lowest stage) counts as one more back event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from leadscore.engine.incremental.customers import add_purchase
from leadscore.events import Event
from leadscore.model.compiled import CUSTOMER_RANK, MQL_RANK, CompiledModel
from leadscore.model.schema import STAGES

if TYPE_CHECKING:
    from leadscore.engine.incremental.lead_state import ModelState


def fold_stages(model: CompiledModel, state: ModelState, event: Event) -> None:
    """Keep each lifecycle rule's latest matching time; an event of a `customer` rule is also a
    purchase (engine.incremental.customers)."""
    purchase = False
    for rule in model.stages:
        if rule.matcher is not None and rule.matcher.matches(event):
            old = state.stage_times[rule.index]
            if old is None or event.timestamp > old:
                state.stage_times[rule.index] = event.timestamp
            purchase = purchase or rule.rank == CUSTOMER_RANK
    if purchase:
        add_purchase(state, event)


def event_stage_rank(model: CompiledModel, times: Sequence[int | None],
                     set_at: tuple[int, int] | None = None) -> int:
    """The stage rank reached through event rules, given each rule's latest matching time
    and the latest stage a program set."""
    back_time, back_rank = set_at if set_at is not None else (None, 0)
    for rule in model.stages:
        t = times[rule.index]
        if not rule.back or t is None:
            continue
        if back_time is None or t > back_time or (t == back_time and rule.rank < back_rank):
            back_time, back_rank = t, rule.rank
    rank = back_rank
    for rule in model.stages:
        t = times[rule.index]
        if rule.back or t is None or rule.matcher is None:
            continue
        if (back_time is None or t > back_time) and rule.rank > rank:
            rank = rule.rank
    return rank


def stage_of(model: CompiledModel, times: Sequence[int | None], when_rank: int,
             mql: bool, set_at: tuple[int, int] | None = None) -> str:
    rank = max(event_stage_rank(model, times, set_at), when_rank, MQL_RANK if mql else 0)
    return STAGES[rank]
