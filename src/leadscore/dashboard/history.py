"""A lead's history under one model, replayed from its events: what each event earned then and
is worth now, the stage changes, and the score day by day (the sparkline).

The replay uses the incremental engine itself, so the numbers are the engine's: an event's
value now is `points × 2^(−age / half_life)` when it still counts (a later event of its
`limit` / `distinct` bucket replaces it), scaled down with its rule's other events where the
rule's `cap` binds. Fit is computed from today's traits (the store keeps traits, not their
history).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from leadscore.engine.incremental import Scorer
from leadscore.engine.incremental.dispatch import Dispatch
from leadscore.engine.incremental.rule_state import bucket, decay_factor
from leadscore.events import Event
from leadscore.model.compiled import CompiledModel
from leadscore.model.schema import Model
from leadscore.timeutil import US_PER_DAY

SPARK_DAYS = 30


@dataclass
class Earned:
    """One rule an event matched: its points when it happened and its value now."""

    rule: str
    then: float
    now: float
    counts: bool            # False: a later event of the same limit/distinct bucket replaced it
    capped: bool = False


@dataclass
class TimelineEntry:
    event: Event
    earned: list[Earned] = field(default_factory=list)

    @property
    def now(self) -> float:
        return sum(e.now for e in self.earned)

    @property
    def then(self) -> float:
        return sum(e.then for e in self.earned)


@dataclass
class History:
    timeline: list[TimelineEntry]           # newest first
    stages: list[tuple[int | None, str]]    # (time, stage entered), oldest first
    sparkline: list[float]                  # score at the end of each of the last 30 days
    engagement_now: float


def _scorer(model: Model, lead_id: str, traits: dict[str, Any], account: dict[str, Any],
            start: int) -> Scorer:
    scorer = Scorer(model)
    scorer.identify(lead_id, traits, account, as_of=start)
    return scorer


def timeline(compiled: CompiledModel, events: Sequence[Event], as_of: int
             ) -> tuple[list[TimelineEntry], float]:
    """Each event with the rules it matched; and the engagement they sum to now."""
    dispatch = Dispatch(compiled)
    entries = [TimelineEntry(e) for e in sorted(events, key=lambda e: e.timestamp)
               if e.timestamp <= as_of]
    latest: dict[tuple[int, Any], Earned] = {}   # (rule, bucket) → the event that counts
    latest_ts: dict[tuple[int, Any], int] = {}
    by_rule: dict[int, list[Earned]] = {}
    for entry in entries:
        event = entry.event
        if dispatch.caught(event):          # the model's own filters: shown, earns nothing
            continue
        for rule in dispatch.rules_for(event):
            worth = rule.points * decay_factor(as_of - event.timestamp, rule.half_life_days)
            earned = Earned(rule.name, rule.points, worth, True)
            entry.earned.append(earned)
            by_rule.setdefault(rule.index, []).append(earned)
            if not rule.bucketed:
                continue
            key = (rule.index, bucket(rule, event, compiled.timezone))
            before = latest.get(key)
            if before is not None and latest_ts[key] >= event.timestamp:
                earned.counts, earned.now = False, 0.0        # the engine keeps the first
                continue
            if before is not None:
                before.counts, before.now = False, 0.0
            latest[key], latest_ts[key] = earned, event.timestamp
    for index, earned_list in by_rule.items():
        cap = compiled.rules[index].cap
        total = sum(e.now for e in earned_list)
        if cap is not None and abs(total) > cap:
            scale = cap / abs(total)
            for e in earned_list:
                e.now *= scale
                e.capped = True
    engagement = sum(e.now for entry in entries for e in entry.earned)
    entries.reverse()
    return entries, engagement


def history(model: Model, compiled: CompiledModel, lead_id: str, traits: dict[str, Any],
            account: dict[str, Any], events: Sequence[Event], as_of: int) -> History:
    """Replay the lead's events under `model`: stage changes and the daily scores of the last
    `SPARK_DAYS` days; plus the timeline."""
    ordered = sorted((e for e in events if e.timestamp <= as_of), key=lambda e: e.timestamp)
    start = ordered[0].timestamp if ordered else as_of
    scorer = _scorer(model, lead_id, traits, account, start)
    stages: list[tuple[int | None, str]] = []
    applies = compiled.applies(scorer.lead(lead_id))
    if applies:
        stages.append((None, scorer.score(lead_id, as_of=start).stage))
    day_ends = [as_of - (SPARK_DAYS - 1 - i) * US_PER_DAY for i in range(SPARK_DAYS)]
    spark: list[float] = []
    position = 0
    for day_end in day_ends:
        while position < len(ordered) and ordered[position].timestamp <= day_end:
            event = ordered[position]
            for update in scorer.update_one(event):
                if not stages or update.score.stage != stages[-1][1]:
                    stages.append((event.timestamp, update.score.stage))
            position += 1
        if applies:
            spark.append(scorer.score(lead_id, as_of=day_end).score)
    entries, engagement = timeline(compiled, ordered, as_of)
    return History(entries, stages, spark, engagement)


def sparkline(model: Model, lead_id: str, traits: dict[str, Any], account: dict[str, Any],
              events: Sequence[Event], as_of: int) -> list[float]:
    """The score at the end of each of the last `SPARK_DAYS` days."""
    ordered = sorted((e for e in events if e.timestamp <= as_of), key=lambda e: e.timestamp)
    scorer = _scorer(model, lead_id, traits, account, ordered[0].timestamp if ordered else as_of)
    if not scorer.models[model.name].applies(scorer.lead(lead_id)):
        return []
    first_day = as_of - (SPARK_DAYS - 1) * US_PER_DAY
    early = [e for e in ordered if e.timestamp <= first_day]
    scorer.update_many(early)
    position = len(early)
    out = []
    for i in range(SPARK_DAYS):
        day_end = first_day + i * US_PER_DAY
        while position < len(ordered) and ordered[position].timestamp <= day_end:
            scorer.update_many([ordered[position]])
            position += 1
        out.append(scorer.score(lead_id, as_of=day_end).score)
    return out
