"""The per-event fold: one event added to its lead's state under every model (rule states and
their sums, stages, interests, program points), without evaluating. `fold_many` is its
vectorised twin."""

from __future__ import annotations

from leadscore.engine.incremental.book import Book
from leadscore.engine.incremental.evaluate import mql_before
from leadscore.engine.incremental.lead_state import LeadState, ModelState, read_time
from leadscore.engine.incremental.lifecycle import fold_stages
from leadscore.engine.incremental.program_points import fold_program_event
from leadscore.engine.incremental.rule_state import DecayedSum, RuleState, bucket
from leadscore.events import Event
from leadscore.model.program_events import NAMES as PROGRAM_EVENTS


def fold_one(book: Book, event: Event, as_of: object) -> tuple[LeadState, int, set[str]]:
    """Add one event to its lead's state; return the lead, the read time and the models
    under which the lead was an MQL just before."""
    lead = book.leads.get(event.lead_id) or book.lead(event.lead_id)
    ts = event.timestamp
    latest = lead.latest
    if as_of is not None:
        when = read_time(lead, as_of)
    else:
        when = ts if latest is None or ts > latest else latest
    before = mql_before(book, lead, when)
    if latest is None or ts > latest:
        lead.latest = ts
    for name, dispatch in book.dispatch.items():
        model = dispatch.model
        state = lead.models.get(name)
        if state is None:
            state = lead.models[name] = ModelState(model)
        if dispatch.filters is not None and dispatch.caught(event):
            continue
        for rule in dispatch.rules_for(event):
            rule_state = state.rules.get(rule.index)
            if rule_state is None:
                rule_state = state.rules[rule.index] = RuleState()
                if rule.cap is not None:
                    state.capped[rule.index] = rule_state
            bucketed = rule.bucketed
            half_life = rule.half_life_days
            change = rule_state.add(ts, half_life,
                                    bucket(rule, event, model.timezone) if bucketed
                                    else None, bucketed)
            if change is False:
                continue
            points = rule.points
            if points > 0:
                state.bound += points
            if rule.cap is None:
                sums = state.sums if points > 0 else state.negative
                acc = sums.get(half_life)
                if acc is None:
                    acc = sums[half_life] = DecayedSum()
                acc.add(points, ts, half_life)
                if change is not None:
                    acc.add(-points, change, half_life)
        if dispatch.stage_rules:
            fold_stages(model, state, event)
        if dispatch.interests is not None:
            state.interests = dispatch.interests.fold(state.interests, event, model.timezone)
        if event.event in PROGRAM_EVENTS:
            fold_program_event(model, state, event)
    return lead, when, before
