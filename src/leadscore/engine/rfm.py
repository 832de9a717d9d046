"""Customer lifecycle (B2C): recency, frequency, monetary value and tenure of each customer.

A purchase is an event matching one of the model's `customer` lifecycle rules' `on` (as for
`purchases` in the scores output); its value is `properties.revenue` (else `properties.total`,
else `properties.value`; none: 0). For a customer at `as_of`:

- `recency_days`: days since the latest purchase; `frequency`: purchases; `monetary`: their
  total value; `tenure_days`: days since the first purchase.

Leads without a purchase have none of these (null). They are columns of the scores output of
both engines (the batch plan reads `engine.sql.purchases`); `engine.batch.rfm.rfm_many` is a
stand-alone batch query (joined to the scores by `lead_id, model`) and `customer_facts` the
Python form segments use.
All give the same numbers; `frequency` is `purchases` (null instead of 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from leadscore.events import Event
from leadscore.model.compiled import CompiledModel, compile_model
from leadscore.model.purchases import purchase_matchers, value_of
from leadscore.model.schema import Model
from leadscore.timeutil import US_PER_DAY

RFM_COLUMNS = ("recency_days", "frequency", "monetary", "tenure_days")


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
