"""Evaluation: a lead's scores under every model after a change, the handoff where it crossed
the MQL threshold, and a score with its reasons."""

from __future__ import annotations

import hashlib
import math

from leadscore.engine.incremental.book import Book
from leadscore.engine.incremental.customers import recency_monetary
from leadscore.engine.incremental.engagement import engagement_at
from leadscore.engine.incremental.interests import profile
from leadscore.engine.incremental.lead_state import LeadState, ModelState
from leadscore.engine.incremental.lifecycle import stage_of
from leadscore.events import Event
from leadscore.model.compiled import CompiledModel
from leadscore.model.interests import compile_interests
from leadscore.scores import Handoff, Reason, Score, Update
from leadscore.timeutil import US_PER_DAY


def mql_before(book: Book, lead: LeadState, as_of: int) -> set[str]:
    """Models under which the lead is an MQL at `as_of` before the coming change.

    Only asked where the last evaluation was an MQL: a lead that has decayed below the
    threshold since and crosses it again raises a new handoff.
    """
    if not lead.models:
        return set()
    found = set()
    for name, state in lead.models.items():
        if state.mql:
            model = book.models[name]
            fit = book.fit(model, lead.lead, state, as_of)
            total = fit.points + engagement_at(model, state, as_of)[0]
            disqualified = fit.disqualify_reason is not None
            if model.is_mql(total, model.grade(fit.points), disqualified):
                found.add(name)
    return found


def evaluate(book: Book, lead: LeadState, as_of: int, event: Event | None,
             before: set[str], scores: bool = True) -> list[Update]:
    """Scores after a change, with a handoff where the lead crossed the MQL threshold;
    without `scores`, only the updates that carry a handoff."""
    updates = []
    for name, model in book.models.items():
        state = lead.models.get(name)
        if state is None:
            state = lead.models[name] = ModelState(model)
        fit = book.fit(model, lead.lead, state, as_of)
        if not fit.applies:
            continue
        if not scores and (fit.disqualify_reason is not None or model.mql_threshold is None
                           or (fit.points + state.bound < model.mql_threshold
                               and as_of >= state.bound_at)):
            state.mql = False      # no crossing is possible: skip the evaluation
            continue
        engagement, state.bound = engagement_at(model, state, as_of)
        state.bound_at = as_of
        total = fit.points + engagement
        disqualified = fit.disqualify_reason is not None
        grade = model.grade(fit.points)
        mql = model.is_mql(total, grade, disqualified)
        state.mql = mql
        if mql and name not in before:
            score = score_of(book, model, lead, state, as_of)
            state.handoffs += 1
            handoff = Handoff(handoff_id(lead.lead.lead_id, name, state.handoffs, as_of),
                              lead.lead.lead_id, name, as_of, score, event)
            updates.append(Update(score, handoff))
        elif scores:
            since = state.since
            stage = stage_of(model, state.stage_times, fit.when_rank, mql, state.stage_set) \
                if model.stages or state.stage_set else ("mql" if mql else "visitor")
            updates.append(Update(tuple.__new__(Score, (
                lead.lead.lead_id, name, fit.points, engagement, total, grade,
                model.temperature(engagement, disqualified), stage, mql, disqualified,
                fit.disqualify_reason, state.purchases, since,
                None if since is None else (as_of - since) / US_PER_DAY, as_of, (), (),
                *recency_monetary(state, as_of)))))
    return updates


def score_of(book: Book, model: CompiledModel, lead: LeadState, state: ModelState,
             as_of: int) -> Score:
    """The lead's score with its reasons, rule by rule."""
    fit = book.fit(model, lead.lead, state, as_of)
    parts = []
    explained = list(fit.reasons)
    for index in sorted(state.rules):
        rule_state, rule = state.rules[index], model.rules[index]
        points = rule.points * rule_state.value(as_of, rule.half_life_days)
        if rule.cap is not None:
            points = max(-rule.cap, min(rule.cap, points))
        parts.append(points)
        explained.append(Reason(rule.name, "engagement", points, rule_state.matched,
                                rule_state.counted, rule_state.last))
    for (program, why), group in sorted((state.program or {}).items()):
        points = group.value(as_of, model.program_half_life)
        parts.append(points)
        explained.append(Reason(f"program {program}: {why}" if why else f"program {program}",
                                "program", points, group.matched, group.matched, group.last,
                                detail=why or None))
    # fsum is correctly rounded: the order of the terms does not matter.
    engagement = math.fsum(parts)
    total = fit.points + engagement
    disqualified = fit.disqualify_reason is not None
    grade = model.grade(fit.points)
    mql = model.is_mql(total, grade, disqualified)
    since = state.since
    return Score(lead.lead.lead_id, model.name, fit.points, engagement, total, grade,
                 model.temperature(engagement, disqualified),
                 stage_of(model, state.stage_times, fit.when_rank, mql, state.stage_set),
                 mql,
                 disqualified, fit.disqualify_reason, state.purchases, since,
                 None if since is None else (as_of - since) / US_PER_DAY, as_of,
                 tuple(explained),
                 profile(compile_interests(model.model), state.interests, as_of),
                 *recency_monetary(state, as_of))


def handoff_id(lead_id: str, model: str, crossing: int, at: int) -> str:
    """A stable id: the same crossing always gets the same id (for deduplication)."""
    return hashlib.sha256(f"{model}\x00{lead_id}\x00{crossing}\x00{at}".encode()).hexdigest()[:32]
