"""Why a lead has its score: the reasons, computed from its events and traits."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from leadscore.errors import InputError
from leadscore.events import Event, Lead
from leadscore.model.schema import Model
from leadscore.scores import Score
from leadscore.timeutil import now_us, parse_timestamp


def explain(model: Model | str | os.PathLike[str],
            events: Iterable[Event | Mapping[str, Any]] | str | os.PathLike[str] | Any,
            lead: Lead | str | None = None, *, as_of: object = None, leads: Any = None
            ) -> Score:
    """Score one lead from its events and profile at `as_of`; the score carries its reasons.

    `model`: a Model or a model file. `events`: the lead's `Event`s, or Segment messages
    (dicts of any type: identify traits count, anonymous ids link, as in a stream), or a
    file / table the batch engine reads (a message stream or an events table; `leads`: a
    leads table beside it), then `lead` names the lead (its id). `lead`: a `Lead` (its
    traits), or a lead id. Events after `as_of` are not seen (nor traits or links set after
    it, from messages). The reasons' points sum to the score.
    """
    if isinstance(model, str | os.PathLike):
        from leadscore.model import load_model

        model = load_model(os.fspath(model))
    when = now_us() if as_of is None else parse_timestamp(as_of)
    items: Any = events if _is_source(events) else list(events)  # type: ignore[arg-type]
    if _is_source(items) or any(not isinstance(e, Event) for e in items):
        # a file, a table, or Segment messages: the batch inputs (the stream stage) find
        # the lead's events and traits as of `when`
        from leadscore.engine.batch.inputs import lead_history
        from leadscore.io.segment import MESSAGE_COLUMNS, columns_table, message_row

        name = lead.lead_id if isinstance(lead, Lead) else lead
        if name is None and not _is_source(items):
            # the messages' user (its anonymous ids link to it), else their one anonymous id
            own = {str(m["userId"]) for m in items if m.get("userId")} or {
                str(m.get("anonymousId")) for m in items}
            if len(own) != 1:
                raise ValueError(f"explain takes the events of one lead; got {len(own)} "
                                 "leads (name the one to explain)")
            name = own.pop()
        if name is None:
            raise InputError("explain: name the lead (its lead_id) to explain from a file")
        source = items if _is_source(items) else columns_table(
            [message_row(m, source="events", row=i) for i, m in enumerate(items, 1)],
            MESSAGE_COLUMNS)
        parsed, profile = lead_history(source, leads, str(name), when)
        if not parsed and profile is None and not isinstance(lead, Lead):
            raise InputError(f"explain: lead {name!r} has no events and no traits as of "
                             f"{when} in the input")
        lead_id = str(name)
        lead = lead if isinstance(lead, Lead) else profile
    else:
        parsed = list(items)
        lead_ids = {e.lead_id for e in parsed} | (
            {lead.lead_id} if isinstance(lead, Lead) else {lead} if lead else set())
        if len(lead_ids) != 1:
            raise ValueError(f"explain takes the events of one lead; got {len(lead_ids)} "
                             "leads")
        lead_id = lead_ids.pop()
        if not isinstance(lead, Lead):
            lead = None
    # Imported here: `leadscore` imports this module, and loads its engines on first use.
    from leadscore.engine.incremental import Scorer

    scorer = Scorer(model)
    if lead is not None:
        scorer.identify(lead_id, lead.traits, lead.account, as_of=when)
    for event in sorted(parsed, key=lambda e: e.timestamp):
        if event.timestamp <= when:
            scorer.update_one(event, as_of=when)
    return scorer.score(lead_id, as_of=when)


def _is_source(events: Any) -> bool:
    """A file path or a table (Arrow, pandas, polars) rather than a list of events."""
    return isinstance(events, str | os.PathLike) or hasattr(events, "column_names") or \
        hasattr(events, "columns")
