"""Why a lead has its score: the reasons, computed from its events and traits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from leadscore.events import Event, Lead, event_from_message
from leadscore.model.schema import Model
from leadscore.scores import Score
from leadscore.timeutil import now_us, parse_timestamp


def explain(model: Model, events: Iterable[Event | Mapping[str, Any]], lead: Lead | None = None,
            *, as_of: object = None) -> Score:
    """Score one lead from its events and profile at `as_of`; the score carries its reasons.

    Events after `as_of` are not seen. The reasons' points sum to the score.
    """
    when = now_us() if as_of is None else parse_timestamp(as_of)
    parsed = [e if isinstance(e, Event) else event_from_message(e) for e in events]
    lead_ids = {e.lead_id for e in parsed} | ({lead.lead_id} if lead else set())
    if len(lead_ids) != 1:
        raise ValueError(f"explain takes the events of one lead; got {len(lead_ids)} leads")
    lead_id = lead_ids.pop()
    # Imported here: `leadscore` imports this module, and loads its engines on first use.
    from leadscore.engine.incremental import Scorer

    scorer = Scorer(model)
    if lead is not None:
        scorer.identify(lead_id, lead.traits, lead.account, as_of=when)
    for event in sorted(parsed, key=lambda e: e.timestamp):
        if event.timestamp <= when:
            scorer.update_one(event, as_of=when)
    return scorer.score(lead_id, as_of=when)
