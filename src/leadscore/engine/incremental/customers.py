"""Customer facts (B2C lifecycle): recency, frequency, monetary value and tenure of a customer.

A purchase and its value are `model.purchases`' (an event matching a `customer` lifecycle rule's
`on`). The incremental engine keeps them per lead and model as it folds events in
(`add_purchase`, read back by `recency_monetary`); `customer_facts` computes them from a lead's
events, for segments. Both give the numbers of the batch plan's columns (and of `rfm_many`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from leadscore.events import Event
from leadscore.model.compiled import CompiledModel, compile_model
from leadscore.model.purchases import purchase_matchers, value_of
from leadscore.model.schema import Model
from leadscore.timeutil import US_PER_DAY

if TYPE_CHECKING:
    from leadscore.engine.incremental.lead_state import ModelState


def add_purchase(state: ModelState, event: Event) -> None:
    """Count a purchase in the lead's state: number, first and latest time, total value."""
    state.purchases += 1
    if state.since is None or event.timestamp < state.since:
        state.since = event.timestamp
    if state.last_buy is None or event.timestamp > state.last_buy:
        state.last_buy = event.timestamp
    state.spend += value_of(event)


def recency_monetary(state: ModelState, as_of: int) -> tuple[float | None, float | None]:
    """recency_days and monetary of a customer; None, None before a purchase."""
    if state.last_buy is None:
        return None, None
    return (as_of - state.last_buy) / US_PER_DAY, state.spend


def customer_facts(model: CompiledModel | Model, events: Sequence[Event], as_of: int
                   ) -> dict[str, Any]:
    """{recency_days, frequency, monetary, tenure_days} of one lead's events (empty if it
    never bought)."""
    compiled = model if isinstance(model, CompiledModel) else compile_model(model)
    matchers = purchase_matchers(compiled)
    bought = [e for e in events if e.timestamp <= as_of and any(m.matches(e) for m in matchers)]
    if not bought:
        return {}
    first = min(e.timestamp for e in bought)
    last = max(e.timestamp for e in bought)
    return {"recency_days": (as_of - last) / US_PER_DAY, "frequency": len(bought),
            "monetary": float(sum(value_of(e) for e in bought)),
            "tenure_days": (as_of - first) / US_PER_DAY}
