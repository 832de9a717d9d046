"""`Scorer.update_many` over many events at once: the fold vectorised per rule with numpy.

The per-event path (`fold_one` + `evaluate`) costs ~12 µs of Python per event. Here a batch
is folded in four steps whose work per event is numpy's, not Python's (what is left in Python
is per lead and rule: the state's objects):

1. *Match*: rules are matched once per distinct (type, event, path) signature, as the batch plan
   does (`engine.signatures`); a rule's `where` is evaluated once per distinct value of the
   paths it reads. This gives (event, rule) pairs, with each pair's bucket (day, week, distinct
   value) for the rules with `limit` or `distinct`.
2. *Decide*: per lead, in arrival order, the engagement after each event and just before it
   (both at the event's read time, the lead's latest time so far) from running sums of decayed
   terms per half-life and sign, and per capped rule; a term replaced in its bucket by a later
   event is subtracted. That gives exactly the per-event path's handoffs — a crossing is
   "MQL after, and not (MQL at the previous evaluation and still before this event)" — except
   where a score lies within rounding of the threshold: such a lead (and a lead with program
   events, or whose events span more than ~900 half-lives) is folded by the per-event path.
3. *Fold*: each (lead, rule)'s new events are applied to its `RuleState` at once (count, latest,
   buckets keep the latest time, the decayed total rescaled exactly), and to the half-life sums.
   A lead's events are applied in segments, each ending with a handoff's event, whose score
   and reasons are taken once its segment is in: those of the moment it crossed.
4. *Stages and interests* are folded per event (order does not matter to them).

The resulting state is the per-event path's up to rounding in the last bits of the totals.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Sequence
from functools import partial
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from leadscore.engine.incremental.engagement import engagement_at
from leadscore.engine.incremental.evaluate import evaluate, handoff_id, score_of
from leadscore.engine.incremental.fold_many.columns import (
    NONE,
    Array,
    by_bucket,
    encode,
    encode_strings,
    getter,
    holds,
    local_days,
    once_keys,
    period_keys,
    rank_of_runs,
    run_rank,
    scan,
    value_keys,
    value_period_keys,
)
from leadscore.engine.incremental.fold_one import fold_one
from leadscore.engine.incremental.lead_state import ModelState
from leadscore.engine.incremental.lifecycle import fold_stages
from leadscore.engine.incremental.rule_state import DecayedSum, RuleState
from leadscore.model.program_events import NAMES as PROGRAM_EVENTS
from leadscore.scores import Handoff
from leadscore.timeutil import ISO_WEEK_SHIFT_DAYS, US_PER_DAY

if TYPE_CHECKING:
    from leadscore.engine.incremental.book import Book
    from leadscore.engine.incremental.dispatch import Dispatch
    from leadscore.engine.incremental.lead_state import LeadState
    from leadscore.engine.incremental.scorer import Scorer
    from leadscore.events import Event
    from leadscore.model.compiled import CompiledModel, EngagementRule

MAX_HALF_LIVES = 900.0          # 2^900 stays far from float overflow
TOLERANCE = 1e-9                # a score this close (relative) to the threshold is a tie


def fold_many(scorer: Scorer, events: Sequence[Event]) -> list[Handoff]:
    """Fold `events` (in arrival order) into `scorer`; the handoffs, as `update_many`."""
    if not events:
        return []
    # The fold creates a few objects per (lead, rule), none of them in a reference cycle:
    # the collector would only walk the many live objects again and again (~20 % of the time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _fold_many(scorer, events)
    finally:
        if collecting:
            gc.enable()


def _fold_many(scorer: Scorer, events: Sequence[Event]) -> list[Handoff]:
    book = scorer.book
    batch = _Batch(book, events)
    slow = np.zeros(batch.leads, bool)       # leads folded by the per-event path
    # Leads with program events: their points change engagement outside the rules.
    for s, (_, name, _) in enumerate(batch.signatures):
        if name in PROGRAM_EVENTS:
            slow[batch.lead[batch.sig == s]] = True
    plans = [_ModelPlan(book, batch, dispatch) for dispatch in book.dispatch.values()]
    handoff_at = np.zeros(batch.n, bool)
    for plan in plans:
        plan.decide(slow)
    for plan in plans:
        handoff_at |= plan.handoff_at
    handoff_at &= ~slow[batch.lead]
    return _apply(book, batch, plans, slow, handoff_at)


class _Batch:
    """The events as columns, and each lead's events in arrival order."""

    def __init__(self, book: Book, events: Sequence[Event]):
        self.events = events
        self.n = n = len(events)
        index, self.lead = encode_strings(list(map(attrgetter("lead_id"), events)))
        self.ts = np.fromiter(map(attrgetter("timestamp"), events), np.int64, n)
        signatures, self.sig = encode(list(map(attrgetter("type", "event", "path"), events)))
        self.signatures: list[tuple[str, str | None, str | None]] = signatures
        known, new = book.leads.get, book.lead
        self.lead_states: list[LeadState] = [known(lead_id) or new(lead_id) for lead_id in index]
        self.leads = len(index)
        latest = np.array([NONE if s.latest is None else s.latest for s in self.lead_states],
                          np.int64)
        # Events by lead, in arrival order: `order`; `rank`: the place in the lead's run.
        self.order = np.argsort(self.lead, kind="stable")
        sorted_lead = self.lead[self.order]
        self.rank = run_rank(sorted_lead)
        # The read time of each event: the lead's latest time so far (as `fold_one`).
        w = np.maximum(self.ts[self.order], np.where(self.rank == 0, latest[sorted_lead], NONE))
        w = scan(w, self.rank, np.maximum)
        self.when = np.empty(n, np.int64)
        self.when[self.order] = w
        last = np.flatnonzero(np.append(sorted_lead[1:] != sorted_lead[:-1], True))
        self.top = np.empty(self.leads, np.int64)        # the lead's latest time after the batch
        self.top[sorted_lead[last]] = w[last]
        first = np.flatnonzero(self.rank == 0)
        self.first_when = np.empty(self.leads, np.int64)  # its read time at its first event
        self.first_when[sorted_lead[first]] = w[first]


class _ModelPlan:
    """One model's (event, rule) pairs, its decisions and its fold."""

    def __init__(self, book: Book, batch: _Batch, dispatch: Dispatch):
        self.book = book
        self.batch = batch
        self.model: CompiledModel = dispatch.model
        self.dispatch = dispatch
        model = self.model
        rules = model.rules
        self.points = np.array([r.points for r in rules] or [0.0], float)
        self.half_life = np.array([_days(r.half_life_days) for r in rules] or [0.0], float)
        events = batch.events
        # 1. pairs: rules matched per signature (the dispatch's cache of page paths), each
        # event repeated for its signature's rules; then `where`, per distinct value
        flat: list[int] = []
        count = np.zeros(len(batch.signatures), np.int64)
        wheres: set[int] = set()
        for s, (kind, name, path) in enumerate(batch.signatures):
            matched = dispatch.rules_of(kind, name, path)
            count[s] = len(matched)
            flat.extend(rule.index for rule in matched)
            wheres.update(rule.index for rule in matched if rule.matcher.where is not None)
        per_event = count[batch.sig]
        k = np.repeat(np.arange(batch.n), per_event)
        first = np.cumsum(count) - count
        within = np.arange(len(k)) - np.repeat(np.cumsum(per_event) - per_event, per_event)
        r = np.array(flat, np.int64)[first[batch.sig[k]] + within] if len(k) else k
        keep = np.ones(len(k), bool)
        for index in sorted(wheres):
            at = np.flatnonzero(r == index)
            keep[at] = holds(rules[index].matcher.where, events, k[at])  # type: ignore[arg-type]
        k, r = k[keep], r[keep]
        # by lead, then arrival (the events' place in `batch.order`), then rule
        place = np.empty(batch.n, np.int64)
        place[batch.order] = np.arange(batch.n)
        order = np.argsort(place[k] * max(len(rules), 1) + r)
        self.k, self.r = k[order], r[order]
        self.pair_lead = batch.lead[self.k]
        self.t = batch.ts[self.k]
        self.bucket = np.zeros(len(self.k), np.int64)
        self.decode: dict[int, Callable[[Array], list[Any]]] = {}
        for rule in rules:
            if rule.bucketed:
                self._buckets(rule)
        self.handoff_at = np.zeros(batch.n, bool)
        self.mql = np.zeros(batch.n, bool)       # MQL after each event (decided leads)
        self.lead_kind = np.zeros(batch.leads, np.int8)   # 0 no change, 1 set False, 2 decided
        self.has_prior = np.zeros(batch.leads, bool)      # has saved rule states
        self.touched = np.zeros(batch.leads, bool)        # has rule states (so far)
        self.model_states: list[Any] = [None] * batch.leads   # each lead's ModelState
        self.rules_of: list[Any] | None = None                 # ... and its `rules`
        self.bucketed = np.array([r.bucketed for r in rules] or [False], bool)
        self.capped = [r.cap is not None for r in rules]
        # the sums of the uncapped rules: one per half-life and sign
        specs: dict[tuple[float | None, bool], int] = {}
        self.kind_of_rule = np.array([
            -1 if r.cap is not None else specs.setdefault((r.half_life_days, r.points > 0),
                                                           len(specs))
            for r in rules] or [-1], np.int64)
        self.kind_specs = list(specs)

    def _buckets(self, rule: EngagementRule) -> None:
        """Each pair's bucket for a rule with `limit` and/or `distinct`, as an int64 code."""
        at = np.flatnonzero(self.r == rule.index)
        if not len(at):
            return
        ts = self.t[at]
        period: Array | None = None
        low = 0
        if rule.limit in ("daily", "weekly"):
            period = local_days(ts, self.model.timezone)
            if rule.limit == "weekly":
                period = (period + ISO_WEEK_SHIFT_DAYS) // 7
            low = int(period.min())
            period = period - low
        if rule.distinct is None:
            if period is None:          # `once`: one bucket, None
                self.decode[rule.index] = once_keys
            else:
                self.bucket[at] = period
                self.decode[rule.index] = partial(period_keys, low)
            return
        chosen = list(map(self.batch.events.__getitem__, self.k[at].tolist()))
        root, _, key = rule.distinct.partition(".")
        if root == "properties" and key and "." not in key:
            values = [event.properties.get(key) for event in chosen]
        else:
            values = list(map(getter(rule.distinct), chosen))
        names, codes = encode(values)
        if period is None:
            self.bucket[at] = codes
            self.decode[rule.index] = partial(value_keys, names)
        else:
            self.bucket[at] = (codes << 32) | period
            self.decode[rule.index] = partial(value_period_keys, names, low)

    # ---- 2. decisions

    def decide(self, slow: Array) -> None:
        """Which events raise a handoff under this model, and whether the lead is an MQL after
        each; marks `slow` the leads where that is not certain."""
        batch, model = self.batch, self.model
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
            f = state.fit or book_fit(model, lead.lead, state)
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
        points = self.points[self.r] if len(self.r) else np.zeros(0)
        gains = np.bincount(self.pair_lead, np.maximum(points, 0.0), n_leads)
        mass = np.bincount(self.pair_lead, np.abs(points), n_leads) + prior_abs
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
        selected = candidate[self.pair_lead]
        deltas = self._deltas(selected, top)
        kinds = self._kinds(prior)
        inits = self._initials(kinds, prior, candidate, top)
        for kind, (half_life, rule_index, _) in enumerate(kinds):
            init = inits[kind]
            if rule_index is None:
                mine = selected & (self._uncapped_kind == kind)
            else:
                mine = selected & (self.r == rule_index)
            at = np.flatnonzero(mine)
            d = deltas[at]
            if rule_index is None:
                d = d * self.points[self.r[at]]
            p_lead = self.pair_lead[at]
            cum = scan(d, run_rank(p_lead), np.add) + init[p_lead]
            last = np.full(len(e), -1, np.int64)
            p_pos = position[self.k[at]]
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
                    cap = self.model.rules[rule_index].cap
                    assert cap is not None
                    target += np.clip(self.points[rule_index] * value, -cap, cap)
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
        found = {_days(r.half_life_days) for r in self.model.rules}
        found.add(_days(self.model.program_half_life))
        return found

    def _kinds(self, prior: list[int]) -> list[tuple[float, int | None, bool]]:
        """The running sums: one per half-life and sign of the uncapped rules (and of the
        program points the leads' saved states hold), one per capped rule."""
        kinds: dict[tuple[float, int | None, bool], int] = {}
        uncapped = np.full(max(len(self.model.rules), 1), -1, np.int64)
        for rule in self.model.rules:
            if rule.cap is None:
                key = (_days(rule.half_life_days), None, rule.points > 0)
                uncapped[rule.index] = kinds.setdefault(key, len(kinds))
            else:
                kinds.setdefault((_days(rule.half_life_days), rule.index, True), len(kinds))
        for i in prior:        # program points: under the model's half-life, either sign
            state = self.model_states[i]
            if state.program:
                for sums, positive in ((state.sums, True), (state.negative, False)):
                    for half_life in sums:
                        kinds.setdefault((_days(half_life), None, positive), len(kinds))
        self._uncapped_kind = uncapped[self.r] if len(self.r) else np.zeros(0, np.int64)
        return list(kinds)

    def _initials(self, kinds: list[tuple[float, int | None, bool]], prior: list[int],
                  candidate: Array, top: Array) -> Array:
        """Each lead's saved value of each running sum, scaled to the lead's latest time."""
        init = np.zeros((max(len(kinds), 1), self.batch.leads))
        number = {kind: n for n, kind in enumerate(kinds)}
        rules = self.model.rules
        for i in prior:
            if not candidate[i]:
                continue
            state = self.model_states[i]
            when = int(top[i])
            saved = [((_days(h), None, True), acc.ref, acc.total) for h, acc in state.sums.items()]
            saved += [((_days(h), None, False), acc.ref, acc.total)
                      for h, acc in state.negative.items()]
            saved += [((_days(rules[r].half_life_days), r, True), rule_state.ref,
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
        rules = self.model.rules
        half = self.half_life[self.r] if len(self.r) else np.zeros(0)
        top_p = top[self.pair_lead]
        decayed = half > 0
        scale = np.where(decayed, half, 1.0) * US_PER_DAY
        delta = np.where(decayed, np.exp2(np.minimum(self.t - top_p, 0) / scale), 1.0)
        bucketed = np.array([r.bucketed for r in rules] or [False], bool)
        at = np.flatnonzero(selected & bucketed[self.r]) if len(self.r) else np.zeros(0, int)
        if not len(at):
            return delta
        # previous latest time of the pair's bucket, in arrival order (saved buckets included)
        lead, rule, bucket, k = self.pair_lead[at], self.r[at], self.bucket[at], self.k[at]
        order = by_bucket(lead, rule, bucket, self.batch.leads, len(rules), k)
        at, lead, rule, bucket = at[order], lead[order], rule[order], bucket[order]
        run = np.append(True, (lead[1:] != lead[:-1]) | (rule[1:] != rule[:-1])
                        | (bucket[1:] != bucket[:-1]))
        rank = rank_of_runs(run)
        t = self.t[at]
        seen = scan(t, rank, np.maximum)
        prev = np.concatenate(([NONE], seen[:-1]))
        prev[run] = NONE
        runs = np.flatnonzero(run & self.has_prior[lead])
        if len(runs):
            model_states = self.model_states
            for index, decode in self.decode.items():
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

    # ---- 3. the fold

    def fold(self, pairs: Array) -> None:
        """Apply `pairs` (indices, all of one segment) to the leads' rule states and sums:
        the new values per (lead, rule) in numpy, then one pass of Python to set them."""
        if not len(pairs):
            return
        rules = self.model.rules
        lead, rule, t, bucket = (self.pair_lead[pairs], self.r[pairs], self.t[pairs],
                                 self.bucket[pairs])
        order = by_bucket(lead, rule, bucket, self.batch.leads, len(rules))
        lead, rule, t, bucket = lead[order], rule[order], t[order], bucket[order]
        run = np.append(True, (lead[1:] != lead[:-1]) | (rule[1:] != rule[:-1]))
        start = np.flatnonzero(run)
        groups = len(start)
        count = np.diff(np.append(start, len(run)))
        group = np.cumsum(run) - 1
        g_lead, g_rule = lead[start], rule[start]
        latest = np.maximum.reduceat(t, start)
        half = self.half_life[g_rule]
        decays = half > 0
        scale = np.where(decays, half, 1.0) * US_PER_DAY
        # the saved states of the groups that have one
        model_states = self.model_states
        saved: dict[int, RuleState] = {}
        old_ref = np.zeros(groups, np.int64)
        old_total = np.zeros(groups)
        g_lead_list, g_rule_list = g_lead.tolist(), g_rule.tolist()
        for g in np.flatnonzero(self.touched[g_lead]).tolist():
            rule_state = model_states[g_lead_list[g]].rules.get(g_rule_list[g])
            if rule_state is not None:
                saved[g] = rule_state
                old_ref[g], old_total[g] = rule_state.ref, rule_state.total
        ref = np.where(decays & (latest > old_ref), latest, old_ref)
        # unbucketed rules: Σ 2^((t − ref) / half-life), or the count without decay
        terms = np.exp2(np.where(decays[group], (t - ref[group]) / scale[group], 0.0))
        new = np.bincount(group, terms, groups)
        # bucketed rules: the latest time per bucket; a bucket's term replaces its saved one
        bucketed = self.bucketed[g_rule]
        in_bucket = bucketed[group]
        b_time, b_code, b_group = t[in_bucket], bucket[in_bucket], group[in_bucket]
        b_first = np.flatnonzero(np.append(True, (b_group[1:] != b_group[:-1])
                                           | (b_code[1:] != b_code[:-1]))) if len(b_time) \
            else np.zeros(0, np.int64)
        b_latest = np.maximum.reduceat(b_time, b_first) if len(b_first) else b_time[:0]
        b_code, b_group = b_code[b_first], b_group[b_first]
        b_rule = g_rule[b_group]
        keys: list[Any] = [None] * len(b_first)
        for index, decode in self.decode.items():
            at = np.flatnonzero(b_rule == index)
            if len(at) == len(keys):
                keys = decode(b_code)
            elif len(at):
                for position, key in zip(at.tolist(), decode(b_code[at]), strict=True):
                    keys[position] = key
        b_old = np.full(len(b_first), NONE, np.int64)
        if saved:
            b_group_list = b_group.tolist()
            for j in np.flatnonzero(np.isin(b_group, list(saved))).tolist():
                buckets = saved[b_group_list[j]].buckets
                old = None if buckets is None else buckets.get(keys[j])
                if old is not None:
                    b_old[j] = old
        if len(b_first):
            known = b_old != NONE
            b_ref, b_scale = ref[b_group], scale[b_group]
            d = decays[b_group]
            term = np.where(d, np.exp2(np.where(d, (b_latest - b_ref) / b_scale, 0.0))
                            - np.where(known & d, np.exp2(np.where(
                                known & d, (b_old - b_ref) / b_scale, 0.0)), 0.0),
                            np.where(known, 0.0, 1.0))
            counts = b_latest > b_old
            new = np.where(bucketed, np.bincount(b_group, np.where(counts, term, 0.0), groups),
                           new)
        else:
            counts = np.zeros(0, bool)
        total = old_total * np.where(decays, np.exp2((old_ref - ref) / scale), 1.0) + new
        self._sums(g_lead, g_rule, ref, total, old_ref, old_total, scale, decays)
        # the objects: new ones built directly, saved ones updated
        b_bounds = np.searchsorted(b_group, np.arange(groups + 1))
        b_latest_list = b_latest.tolist()
        capped = self.capped
        fresh = np.ones(groups, bool)
        fresh[list(saved)] = False
        at = np.flatnonzero(fresh)
        if self.rules_of is None:
            self.rules_of = [None if state is None else state.rules for state in model_states]
        rules_of = self.rules_of
        make = RuleState.__new__
        for i, r, n, top, ref_g, total_g, a, b in zip(
                g_lead[at].tolist(), g_rule[at].tolist(), count[at].tolist(),
                latest[at].tolist(), ref[at].tolist(), total[at].tolist(),
                b_bounds[at].tolist(), b_bounds[at + 1].tolist(), strict=True):
            rule_state = make(RuleState)
            rule_state.ref, rule_state.total, rule_state.matched, rule_state.last = \
                ref_g, total_g, n, top
            rule_state.buckets = dict(zip(keys[a:b], b_latest_list[a:b], strict=True)) \
                if a < b else None
            rules_of[i][r] = rule_state
            if capped[r]:
                model_states[i].capped[r] = rule_state
        if saved:
            at = np.array(list(saved), np.int64)
            counts_list = counts.tolist()
            for rule_state, ref_g, total_g, n, top, a, b in zip(
                    saved.values(), ref[at].tolist(), total[at].tolist(), count[at].tolist(),
                    latest[at].tolist(), b_bounds[at].tolist(), b_bounds[at + 1].tolist(),
                    strict=True):
                rule_state.ref, rule_state.total = ref_g, total_g
                rule_state.matched += n
                if rule_state.last is None or top > rule_state.last:
                    rule_state.last = top
                if a < b:
                    buckets = rule_state.buckets
                    if buckets is None:
                        buckets = rule_state.buckets = {}
                    for j in range(a, b):
                        if counts_list[j]:
                            buckets[keys[j]] = b_latest_list[j]
        self.touched[g_lead] = True
        del rules

    def _sums(self, g_lead: Array, g_rule: Array, ref: Array, total: Array, old_ref: Array,
              old_total: Array, scale: Array, decays: Array) -> None:
        """Each lead's sums per half-life and sign of the uncapped rules: the change of every
        (lead, rule) added as one term per (lead, half-life, sign)."""
        kind = self.kind_of_rule[g_rule]
        at = np.flatnonzero(kind >= 0)
        if not len(at):
            return
        key = g_lead[at] * len(self.kind_specs) + kind[at]
        keys, inverse = np.unique(key, return_inverse=True)
        top = np.full(len(keys), NONE, np.int64)
        np.maximum.at(top, inverse, ref[at])
        top_g = top[inverse]
        s, d = scale[at], decays[at]
        points = self.points[g_rule[at]]
        change = points * np.where(
            d, total[at] * np.exp2((ref[at] - top_g) / s)
            - old_total[at] * np.exp2((np.minimum(old_ref[at], top_g) - top_g) / s),
            total[at] - old_total[at])
        change = np.bincount(inverse, change, len(keys))
        specs = self.kind_specs
        model_states = self.model_states
        width = len(specs)
        make = DecayedSum.__new__
        for k, value, when in zip(keys.tolist(), change.tolist(), top.tolist(), strict=True):
            i, kind_index = divmod(k, width)
            half_life, positive = specs[kind_index]
            state = model_states[i]
            sums = state.sums if positive else state.negative
            acc = sums.get(half_life)
            if half_life is None:
                when = 0
            if acc is None and when >= 0:   # what add() gives a new sum
                acc = sums[half_life] = make(DecayedSum)
                acc.ref, acc.total = when, value
                continue
            if acc is None:
                acc = sums[half_life] = DecayedSum()
            acc.add(value, when, half_life)

    def handoff(self, k: int) -> Handoff:
        """The handoff event `k` raised (its lead's segment up to it folded): as
        `evaluate` raises it."""
        batch, model = self.batch, self.model
        i = int(batch.lead[k])
        lead, state = batch.lead_states[i], self.model_states[i]
        when = int(batch.when[k])
        score = score_of(self.book, model, lead, state, when)
        state.handoffs += 1
        lead_id = lead.lead.lead_id
        return Handoff(handoff_id(lead_id, model.name, state.handoffs, when), lead_id,
                       model.name, when, score, batch.events[k])

    def gains(self, pairs: Array) -> Array:
        """Per lead, the positive points of `pairs` (what the per-event path adds to the MQL
        bound)."""
        points = self.points[self.r[pairs]]
        return np.bincount(self.pair_lead[pairs], np.maximum(points, 0.0), self.batch.leads)


def _apply(book: Book, batch: _Batch, plans: list[_ModelPlan], slow: Array,
           handoff_at: Array) -> list[Handoff]:
    """Fold the events in, segment by segment: a lead's segment ends with a handoff's event,
    whose score (and reasons) is taken once that segment is folded. The slow leads' events go
    through the per-event path."""
    events = batch.events
    order = batch.order
    barrier = handoff_at[order].astype(np.int64)
    # each event's segment: the lead's handoffs before it
    cum = np.cumsum(barrier)
    run_start = np.flatnonzero(batch.rank == 0)
    base = np.repeat(cum[run_start] - barrier[run_start],
                     np.diff(np.append(run_start, len(order))))
    segment = np.empty(batch.n, np.int64)
    segment[order] = cum - barrier - base
    fast = ~slow[batch.lead]
    found: list[tuple[int, int, Handoff]] = []
    rounds = int(segment[fast].max()) + 1 if fast.any() else 0
    # the events and each model's pairs of each round, in arrival order
    by_round = [_split(np.flatnonzero(fast), segment, rounds)]
    for plan in plans:
        by_round.append(_split(np.flatnonzero(fast[plan.k]), segment[plan.k], rounds))
    for number in range(rounds):
        ks = by_round[0][number]
        _fold_segment(batch, plans, ks, [pairs[number] for pairs in by_round[1:]])
        for k in ks[handoff_at[ks]].tolist():
            for index, plan in enumerate(plans):
                if plan.handoff_at[k]:
                    found.append((k, index, plan.handoff(k)))
    if slow.any():
        for k in np.flatnonzero(slow[batch.lead]).tolist():
            event = events[k]
            lead, when, before = fold_one(book, event, None)
            for update in evaluate(book, lead, when, event, before, scores=False):
                if update.handoff is not None:
                    found.append((k, len(found), update.handoff))
    found.sort(key=lambda item: (item[0], item[1]))
    return [handoff for _, _, handoff in found]


def _split(at: Array, segment: Array, rounds: int) -> list[Array]:
    """`at` (ascending indices) split by their `segment`, each part still ascending."""
    order = np.argsort(segment[at], kind="stable")
    bounds = np.searchsorted(segment[at][order], np.arange(rounds + 1)).tolist()
    at = at[order]
    return [at[bounds[n]:bounds[n + 1]] for n in range(rounds)]


def _fold_segment(batch: _Batch, plans: list[_ModelPlan], ks: Array,
                  pairs_of: list[Array]) -> None:
    """Fold one segment of events (`ks`; each model's pairs of them: `pairs_of`) without
    evaluating."""
    events = batch.events
    leads_here = np.unique(batch.lead[ks])
    # the lead's latest event, and the last event of the segment per lead
    ts = batch.ts[ks]
    top = np.full(batch.leads, NONE, np.int64)
    np.maximum.at(top, batch.lead[ks], ts)
    last_event = np.full(batch.leads, -1, np.int64)
    np.maximum.at(last_event, batch.lead[ks], ks)
    states = batch.lead_states
    for i, latest in zip(leads_here.tolist(), top[leads_here].tolist(), strict=True):
        lead = states[i]
        if lead.latest is None or latest > lead.latest:
            lead.latest = latest
    for plan, pairs in zip(plans, pairs_of, strict=True):
        plan.fold(pairs)
        model = plan.model
        name = model.name
        # the MQL bound grows by the points added; the MQL flag is the last event's
        kinds = plan.lead_kind[leads_here]
        flags = np.where(kinds == 2, plan.mql[last_event[leads_here]], False)
        model_states = plan.model_states
        for i, gain, kind, flag in zip(leads_here.tolist(), plan.gains(pairs)[leads_here].tolist(),
                                       kinds.tolist(), flags.tolist(), strict=True):
            state = model_states[i]
            if gain and state.bound != math.inf:
                state.bound += gain
            if kind:
                state.mql = flag
        dispatch = plan.dispatch
        if dispatch.stage_rules or dispatch.interests is not None:
            for k, i in zip(ks.tolist(), batch.lead[ks].tolist(), strict=True):
                event = events[k]
                state = states[i].models[name]
                if dispatch.stage_rules:
                    fold_stages(model, state, event)
                if dispatch.interests is not None:
                    state.interests = dispatch.interests.fold(state.interests, event,
                                                              model.timezone)


def _days(half_life: float | None) -> float:
    """A half-life in days; 0 for none."""
    return 0.0 if half_life is None else float(half_life)
