"""The rule dispatch of one model, shared by the per-event fold, the vectorised fold
(`fold_many`) and the dashboard's history."""

from __future__ import annotations

from leadscore.engine.incremental.interests import InterestDispatch
from leadscore.events import Event
from leadscore.filters import Filters, event_filter
from leadscore.model.compiled import CompiledModel, EngagementRule
from leadscore.model.conditions import evaluate
from leadscore.model.interests import compile_interests


class Dispatch:
    """Which rules an event can match, found without trying every rule.

    Track/screen events are looked up by name; page paths are matched against the page
    globs once per distinct path (cached), as the batch engine does.
    """

    def __init__(self, model: CompiledModel):
        self.model = model
        self.by_name: dict[str, list[EngagementRule]] = {}
        self.page_rules = [r for r in model.rules if r.matcher.page_regex is not None]
        for rule in model.rules:
            for name in rule.matcher.events:
                self.by_name.setdefault(name, []).append(rule)
        self.by_path: dict[str, list[EngagementRule]] = {}
        self.stage_rules = any(r.matcher is not None for r in model.stages)
        interests = compile_interests(model.model)
        self.interests = InterestDispatch(interests) if interests else None
        # The model's own filters (`filters:`): events the settings' filters let through
        # that this model alone does not score (the service judged those at ingest).
        own = model.model.filters
        self.filters: Filters | None = own.own() if own is not None else None

    def caught(self, event: Event) -> bool:
        """Whether the model's own filters keep `event` out of its scoring."""
        return self.filters is not None and event_filter(event, self.filters) is not None

    def rules_for(self, event: Event) -> list[EngagementRule]:
        candidates = self.rules_of(event.type, event.event, event.path)
        if not candidates:
            return candidates
        return [r for r in candidates if r.matcher.where is None or _where(r, event)]

    def rules_of(self, kind: str, name: str | None, path: str | None) -> list[EngagementRule]:
        """The rules an event of this (type, event, path) signature matches, `where` aside."""
        if kind == "page":
            if path is None:
                return []
            candidates = self.by_path.get(path)
            if candidates is None:
                candidates = [r for r in self.page_rules
                              if r.matcher.page_regex.fullmatch(path)]  # type: ignore[union-attr]
                if len(self.by_path) < 100_000:
                    self.by_path[path] = candidates
            return candidates
        return self.by_name.get(name or "", [])


def _where(rule: EngagementRule, event: Event) -> bool:
    assert rule.matcher.where is not None
    return evaluate(rule.matcher.where, event.get)
