"""What a purchase is, the one definition every engine reads (B2C customer lifecycle).

A purchase is an event matching one of the model's `customer` lifecycle rules' `on` (`back:
true` ones included, as for `purchases` in the scores output); its value is
`properties.revenue`, else `properties.total`, else `properties.value` (none: 0). For a customer
at `as_of`: `recency_days` (days since the latest purchase), `frequency` (purchases),
`monetary` (their total value), `tenure_days` (days since the first purchase); leads without a
purchase have none of these (null).

They are columns of the scores output of every engine: the batch plan reads
`engine.sql.purchases`, the incremental engine `engine.incremental.customers`;
`engine.batch.rfm.rfm_many` is a stand-alone batch query and
`engine.incremental.customers.customer_facts` the Python form segments use. All give the same
numbers."""

from __future__ import annotations

from leadscore.events import Event
from leadscore.model.compiled import CUSTOMER_RANK, CompiledModel, Matcher
from leadscore.model.conditions import as_number

VALUE_PATHS = ("properties.revenue", "properties.total", "properties.value")


def purchase_matchers(model: CompiledModel) -> list[Matcher]:
    """The matchers of the model's `customer` rules with `on`."""
    return [r.matcher for r in model.stages if r.rank == CUSTOMER_RANK and r.matcher is not None]


def value_of(event: Event) -> float:
    """A purchase's value: the first of VALUE_PATHS that is a number, else 0."""
    for path in VALUE_PATHS:
        number = as_number(event.get(path))
        if number is not None:
            return number
    return 0.0
