"""Step 2 of the vectorised fold, *decide*: which events raise a handoff under one model.

Per lead, in arrival order, the engagement after each event and just before it (both at the
event's read time, the lead's latest time so far) from running sums of decayed terms per
half-life and sign, and per capped rule; a term replaced in its bucket by a later event is
subtracted. That gives exactly the per-event path's handoffs — a crossing is "MQL after, and not
(MQL at the previous evaluation and still before this event)" — except where a score lies
within rounding of the threshold: such a lead (and a lead with program events, or whose events
span more than ~900 half-lives) is marked slow, for the per-event path.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from leadscore.engine.incremental.book import Book
from leadscore.engine.incremental.engagement import engagement_at
from leadscore.engine.incremental.fold_many.columns import (
    NONE,
    Array,
    by_bucket,
    rank_of_runs,
    run_rank,
    scan,
)
from leadscore.engine.incremental.fold_many.pairs import Pairs, days
from leadscore.engine.incremental.lead_state import ModelState
from leadscore.timeutil import US_PER_DAY

MAX_HALF_LIVES = 900.0          # 2^900 stays far from float overflow
TOLERANCE = 1e-9                # a score this close (relative) to the threshold is a tie


class Decision:
    """One model's decisions over a batch: the events that raise a handoff, whether the lead is
    an MQL after each, how each lead's MQL flag changes; with each lead's `ModelState`
    (created where missing)."""

    def __init__(self, book: Book, pairs: Pairs):
        self.book = book
        self.pairs = pairs
        batch = pairs.batch
        self.handoff_at = np.zeros(batch.n, bool)
        self.mql = np.zeros(batch.n, bool)       # MQL after each event (decided leads)
        self.lead_kind = np.zeros(batch.leads, np.int8)   # 0 no change, 1 set False, 2 decided
        self.has_prior = np.zeros(batch.leads, bool)      # has saved rule states
        self.touched = np.zeros(batch.leads, bool)        # has rule states
        self.model_states: list[Any] = [None] * batch.leads   # each lead's ModelState
        self._uncapped_kind = np.zeros(0, np.int64)   # each pair's running sum (`_kinds`)

    def decide(self, slow: Array) -> None:
        """Which events raise a handoff under this model, and whether the lead is an MQL after
        each; marks `slow` the leads where that is not certain."""
        pairs = self.pairs
        batch, model = pairs.batch, pairs.model
        name = model.name
        threshold = model.mql_threshold
        leads = batch.lead_states
        n_leads = batch.leads
        fit_list = [0.0] * n_leads
        eligible_list = [False] * n_leads
        mql_list = [False] * n_leads
        kind_list = [0] * n_leads
        touched = [False] * n_leads
        prior_positive = np.zeros(n_leads)
        prior_abs = np.zeros(n_leads)
        prior: list[int] = []
        book_fit = self.book.fit
        model_states = self.model_states
        can: dict[tuple[float, bool], bool] = {}    # (fit, disqualified) → can be an MQL
        for i, lead in enumerate(leads):
            state = lead.models.get(name)
            if state is None:
                state = lead.models[name] = ModelState(model)
            model_states[i] = state
            # A lead whose fit moves with time (a date an `age_of` rule reads) is slow
            # (`fold_many`): for the others fit is the same at every time.
            f = book_fit(model, lead.lead, state, 0)
            if state.rules:
                touched[i] = True
            if not f.applies:
                continue
            kind_list[i] = 1
            key = (f.points, f.disqualify_reason is not None)
            possible = can.get(key)
            if possible is None:
                possible = can[key] = threshold is not None and model.is_mql(
                    math.inf, model.grade(key[0]), key[1])
            if not possible:
                continue
            eligible_list[i] = True
            fit_list[i] = f.points
            mql_list[i] = state.mql
            if state.rules or state.program:
                prior.append(i)
        self.touched = np.array(touched, bool)
        self.lead_kind = np.array(kind_list, np.int8)
        self.has_prior[prior] = True
        fit = np.array(fit_list, float)
        eligible = np.array(eligible_list, bool)
        prior_mql = np.array(mql_list, bool)
        first_when = batch.first_when.tolist()
        for i in prior:
            state = model_states[i]
            when = first_when[i]
            if state.bound != math.inf and state.bound_at <= when:
                # the MQL bound: at least the positive part from bound_at on
                positive = state.bound
                negative = math.fsum(-acc.total for acc in state.negative.values())
                negative += sum(model.rules[r].cap or 0.0 for r in state.capped)
            else:
                total, positive = engagement_at(model, state, when)
                negative = positive - total
            prior_positive[i] = positive
            prior_abs[i] = positive + abs(negative)
        if threshold is None or not eligible.any():
            return
        points = pairs.points[pairs.r] if len(pairs.r) else np.zeros(0)
        gains = np.bincount(pairs.pair_lead, np.maximum(points, 0.0), n_leads)
        mass = np.bincount(pairs.pair_lead, np.abs(points), n_leads) + prior_abs
        tolerance = TOLERANCE * (1.0 + np.abs(fit) + abs(threshold) + mass)
        candidate = eligible & ~slow & (fit + prior_positive + gains >= threshold - tolerance)
        self.lead_kind[candidate] = 2
        if not candidate.any():
            return
        # Leads whose events span too many half-lives for the scaled sums: per event.
        top = batch.top.astype(float)
        span = (top - batch.first_when) / US_PER_DAY
        shortest = min((h for h in self._half_lives() if h > 0), default=math.inf)
        far = candidate & (span / shortest > MAX_HALF_LIVES)
        slow |= far
        candidate &= ~far
        self.lead_kind[far] = 0
        if not candidate.any():
            return
        e = batch.order[candidate[batch.lead[batch.order]]]   # candidate events, by lead
        e_lead = batch.lead[e]
        e_rank = run_rank(e_lead)
        position = np.full(batch.n, -1, np.int64)
        position[e] = np.arange(len(e))
        e_age = (top[e_lead] - batch.when[e]) / US_PER_DAY   # ≥ 0
        after = np.zeros(len(e))
        before = np.zeros(len(e))
        selected = candidate[pairs.pair_lead]
        deltas = self._deltas(selected, top)
        kinds = self._kinds(prior)
        inits = self._initials(kinds, prior, candidate, top)
        for kind, (half_life, rule_index, _) in enumerate(kinds):
            init = inits[kind]
            if rule_index is None:
                mine = selected & (self._uncapped_kind == kind)
            else:
                mine = selected & (pairs.r == rule_index)
            at = np.flatnonzero(mine)
            d = deltas[at]
            if rule_index is None:
                d = d * pairs.points[pairs.r[at]]
            p_lead = pairs.pair_lead[at]
            cum = scan(d, run_rank(p_lead), np.add) + init[p_lead]
            last = np.full(len(e), -1, np.int64)
            p_pos = position[pairs.k[at]]
            is_last = np.append(p_pos[1:] != p_pos[:-1], True) if len(at) else np.zeros(0, bool)
            last[p_pos[is_last]] = np.flatnonzero(is_last)
            upto = np.maximum.accumulate(last) if len(last) else last
            prev = np.concatenate(([-1], upto[:-1]))
            factor = np.ones(len(e)) if half_life == 0 else np.exp2(e_age / half_life)
            for target, index in ((after, upto), (before, prev)):
                ok = index >= 0
                ok[ok] = p_lead[index[ok]] == e_lead[ok]
                value = np.where(ok, cum[np.maximum(index, 0)] if len(cum) else 0.0,
                                 init[e_lead]) * factor
                if rule_index is None:
                    target += value
                else:
                    cap = pairs.model.rules[rule_index].cap
                    assert cap is not None
                    target += np.clip(pairs.points[rule_index] * value, -cap, cap)
        score_after = fit[e_lead] + after
        score_before = fit[e_lead] + before
        mql = score_after >= threshold
        was = np.concatenate(([False], mql[:-1]))
        was[e_rank == 0] = prior_mql[e_lead[e_rank == 0]]
        handoff = mql & ~(was & (score_before >= threshold))
        near = (np.abs(score_after - threshold) <= tolerance[e_lead]) | (
            was & (np.abs(score_before - threshold) <= tolerance[e_lead]))
        tied = np.unique(e_lead[near])
        slow[tied] = True
        self.lead_kind[tied] = 0
        self.handoff_at[e[handoff]] = True
        self.mql[e[mql]] = True

    def _half_lives(self) -> set[float]:
        pairs = self.pairs
        found = {days(r.half_life_days) for r in pairs.model.rules}
        found.add(days(pairs.model.program_half_life))
        return found

    def _kinds(self, prior: list[int]) -> list[tuple[float, int | None, bool]]:
        """The running sums: one per half-life and sign of the uncapped rules (and of the
        program points the leads' saved states hold), one per capped rule."""
        pairs = self.pairs
        kinds: dict[tuple[float, int | None, bool], int] = {}
        uncapped = np.full(max(len(pairs.model.rules), 1), -1, np.int64)
        for rule in pairs.model.rules:
            if rule.cap is None:
                key = (days(rule.half_life_days), None, rule.points > 0)
                uncapped[rule.index] = kinds.setdefault(key, len(kinds))
            else:
                kinds.setdefault((days(rule.half_life_days), rule.index, True), len(kinds))
        for i in prior:        # program points: under the model's half-life, either sign
            state = self.model_states[i]
            if state.program:
                for sums, positive in ((state.sums, True), (state.negative, False)):
                    for half_life in sums:
                        kinds.setdefault((days(half_life), None, positive), len(kinds))
        self._uncapped_kind = uncapped[pairs.r] if len(pairs.r) else np.zeros(0, np.int64)
        return list(kinds)

    def _initials(self, kinds: list[tuple[float, int | None, bool]], prior: list[int],
                  candidate: Array, top: Array) -> Array:
        """Each lead's saved value of each running sum, scaled to the lead's latest time."""
        pairs = self.pairs
        init = np.zeros((max(len(kinds), 1), pairs.batch.leads))
        number = {kind: n for n, kind in enumerate(kinds)}
        rules = pairs.model.rules
        for i in prior:
            if not candidate[i]:
                continue
            state = self.model_states[i]
            when = int(top[i])
            saved = [((days(h), None, True), acc.ref, acc.total) for h, acc in state.sums.items()]
            saved += [((days(h), None, False), acc.ref, acc.total)
                      for h, acc in state.negative.items()]
            saved += [((days(rules[r].half_life_days), r, True), rule_state.ref,
                       rule_state.total) for r, rule_state in state.capped.items()]
            for key, ref, total in saved:
                half_life = key[0]
                init[number[key], i] = total if half_life == 0 else total * 2.0 ** (
                    (ref - when) / (half_life * US_PER_DAY))
        return init

    def _deltas(self, selected: Array, top: Array) -> Array:
        """Each pair's change to its rule's total, in units scaled to the lead's latest time:
        2^((t − top) / half-life) for an event that counts, less the term of the event it
        replaces in its bucket; 1 (a new bucket) or 0 without decay."""
        pairs = self.pairs
        rules = pairs.model.rules
        half = pairs.half_life[pairs.r] if len(pairs.r) else np.zeros(0)
        top_p = top[pairs.pair_lead]
        decayed = half > 0
        scale = np.where(decayed, half, 1.0) * US_PER_DAY
        delta = np.where(decayed, np.exp2(np.minimum(pairs.t - top_p, 0) / scale), 1.0)
        bucketed = np.array([r.bucketed for r in rules] or [False], bool)
        at = np.flatnonzero(selected & bucketed[pairs.r]) if len(pairs.r) else np.zeros(0, int)
        if not len(at):
            return delta
        # previous latest time of the pair's bucket, in arrival order (saved buckets included)
        lead, rule, bucket, k = pairs.pair_lead[at], pairs.r[at], pairs.bucket[at], pairs.k[at]
        order = by_bucket(lead, rule, bucket, pairs.batch.leads, len(rules), k)
        at, lead, rule, bucket = at[order], lead[order], rule[order], bucket[order]
        run = np.append(True, (lead[1:] != lead[:-1]) | (rule[1:] != rule[:-1])
                        | (bucket[1:] != bucket[:-1]))
        rank = rank_of_runs(run)
        t = pairs.t[at]
        seen = scan(t, rank, np.maximum)
        prev = np.concatenate(([NONE], seen[:-1]))
        prev[run] = NONE
        runs = np.flatnonzero(run & self.has_prior[lead])
        if len(runs):
            model_states = self.model_states
            for index, decode in pairs.decode.items():
                mine = runs[rule[runs] == index]
                for j, i, key in zip(mine.tolist(), lead[mine].tolist(), decode(bucket[mine]),
                                     strict=True):
                    rule_state = model_states[i].rules.get(index)
                    if rule_state is not None and rule_state.buckets:
                        old = rule_state.buckets.get(key)
                        if old is not None:
                            prev[j] = old
        # carry the saved time through the run
        start = np.flatnonzero(run)
        prev = np.maximum(prev, np.repeat(prev[start], np.diff(np.append(start, len(run)))))
        counts = t > prev
        had = prev != NONE
        h = half[at]
        s = scale[at]
        tp = top_p[at]
        new_term = np.exp2(np.minimum(t - tp, 0) / s)
        old_term = np.where(had, np.exp2(np.minimum(np.where(had, prev, tp) - tp, 0) / s), 0.0)
        delta[at] = np.where(counts, np.where(h > 0, new_term - old_term,
                                              np.where(had, 0.0, 1.0)), 0.0)
        return delta
