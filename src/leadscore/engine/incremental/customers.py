"""Customer facts (B2C lifecycle): recency, frequency, monetary value and tenure of a customer.

A purchase and its value are `model.purchases`' (an event matching a `customer` lifecycle rule's
`on`). The incremental engine keeps them per lead and model as it folds events in
(`add_purchase`, read back by `recency_monetary`), the numbers of the batch plan's columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leadscore.events import Event
from leadscore.model.purchases import value_of
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
