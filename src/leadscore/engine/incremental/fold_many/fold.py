"""Step 3 of the vectorised fold, *fold*: each (lead, rule)'s new events applied to its
`RuleState` at once (count, latest, buckets keep the latest time, the decayed total rescaled
exactly), and to the half-life sums. A lead's events are applied in segments, each ending with a
handoff's event, whose score and reasons are taken once its segment is in: those of the moment
it crossed. Stages and interests are folded per event (order does not matter to them); the
leads `decide` left uncertain go through the per-event path (`fold_one`, `evaluate`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from leadscore.engine.incremental.book import Book
from leadscore.engine.incremental.evaluate import evaluate, handoff_id, score_of
from leadscore.engine.incremental.fold_many.columns import NONE, Array, EventColumns, by_bucket
from leadscore.engine.incremental.fold_many.decide import Decision
from leadscore.engine.incremental.fold_one import fold_one
from leadscore.engine.incremental.lifecycle import fold_stages
from leadscore.engine.incremental.rule_state import DecayedSum, RuleState
from leadscore.scores import Handoff
from leadscore.timeutil import US_PER_DAY


class ModelFold:
    """One model's fold of a batch, from its pairs and decisions."""

    def __init__(self, book: Book, decision: Decision):
        self.book = book
        self.pairs = pairs = decision.pairs
        self.decision = decision
        self.model_states = decision.model_states   # each lead's ModelState ...
        self.rules_of: list[Any] | None = None      # ... and its `rules` (at the first fold)
        self.touched = decision.touched             # has rule states (so far)
        rules = pairs.model.rules
        self.bucketed = np.array([r.bucketed for r in rules] or [False], bool)
        self.capped = [r.cap is not None for r in rules]
        # the sums of the uncapped rules: one per half-life and sign
        specs: dict[tuple[float | None, bool], int] = {}
        self.kind_of_rule = np.array([
            -1 if r.cap is not None else specs.setdefault((r.half_life_days, r.points > 0),
                                                           len(specs))
            for r in rules] or [-1], np.int64)
        self.kind_specs = list(specs)

    def fold(self, segment: Array) -> None:
        """Apply the pairs `segment` (indices, all of one segment) to the leads' rule states
        and sums: the new values per (lead, rule) in numpy, then one pass of Python to set
        them."""
        if not len(segment):
            return
        pairs = self.pairs
        rules = pairs.model.rules
        lead, rule, t, bucket = (pairs.pair_lead[segment], pairs.r[segment], pairs.t[segment],
                                 pairs.bucket[segment])
        order = by_bucket(lead, rule, bucket, pairs.batch.leads, len(rules))
        lead, rule, t, bucket = lead[order], rule[order], t[order], bucket[order]
        run = np.append(True, (lead[1:] != lead[:-1]) | (rule[1:] != rule[:-1]))
        start = np.flatnonzero(run)
        groups = len(start)
        count = np.diff(np.append(start, len(run)))
        group = np.cumsum(run) - 1
        g_lead, g_rule = lead[start], rule[start]
        latest = np.maximum.reduceat(t, start)
        half = pairs.half_life[g_rule]
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
        for index, decode in pairs.decode.items():
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
        points = self.pairs.points[g_rule[at]]
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
        batch, model = self.pairs.batch, self.pairs.model
        i = int(batch.lead[k])
        lead, state = batch.lead_states[i], self.model_states[i]
        when = int(batch.when[k])
        score = score_of(self.book, model, lead, state, when)
        state.handoffs += 1
        lead_id = lead.lead.lead_id
        return Handoff(handoff_id(lead_id, model.name, state.handoffs, when), lead_id,
                       model.name, when, score, batch.events[k])

    def gains(self, segment: Array) -> Array:
        """Per lead, the positive points of the pairs `segment` (what the per-event path adds
        to the MQL bound)."""
        pairs = self.pairs
        points = pairs.points[pairs.r[segment]]
        return np.bincount(pairs.pair_lead[segment], np.maximum(points, 0.0), pairs.batch.leads)


def apply(book: Book, batch: EventColumns, folds: list[ModelFold], slow: Array,
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
    for fold in folds:
        pair_event = fold.pairs.k
        by_round.append(_split(np.flatnonzero(fast[pair_event]), segment[pair_event], rounds))
    for number in range(rounds):
        ks = by_round[0][number]
        _fold_segment(batch, folds, ks, [pairs[number] for pairs in by_round[1:]])
        for k in ks[handoff_at[ks]].tolist():
            for index, fold in enumerate(folds):
                if fold.decision.handoff_at[k]:
                    found.append((k, index, fold.handoff(k)))
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


def _fold_segment(batch: EventColumns, folds: list[ModelFold], ks: Array,
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
    for fold, pairs in zip(folds, pairs_of, strict=True):
        fold.fold(pairs)
        decision = fold.decision
        model = fold.pairs.model
        name = model.name
        # the MQL bound grows by the points added; the MQL flag is the last event's
        kinds = decision.lead_kind[leads_here]
        flags = np.where(kinds == 2, decision.mql[last_event[leads_here]], False)
        model_states = fold.model_states
        for i, gain, kind, flag in zip(leads_here.tolist(), fold.gains(pairs)[leads_here].tolist(),
                                       kinds.tolist(), flags.tolist(), strict=True):
            state = model_states[i]
            if gain and state.bound != math.inf:
                state.bound += gain
            if kind:
                state.mql = flag
        dispatch = fold.pairs.dispatch
        if dispatch.stage_rules or dispatch.interests is not None:
            for k, i in zip(ks.tolist(), batch.lead[ks].tolist(), strict=True):
                event = events[k]
                state = states[i].models[name]
                if dispatch.stage_rules:
                    fold_stages(model, state, event)
                if dispatch.interests is not None:
                    state.interests = dispatch.interests.fold(state.interests, event,
                                                              model.timezone)
