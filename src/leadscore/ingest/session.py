"""Scoring inside one store transaction: each lead touched is loaded once (its saved engine
state, or a replay of its events when the state is missing or from another model version),
updated message by message, and saved once at the end with its score. A crossing of the MQL
threshold writes a handoff to the outbox in the same transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from leadscore.engine.incremental import Handoff, ModelState, Scorer, Update
from leadscore.errors import EngineError
from leadscore.events import Event
from leadscore.model.schema import Model
from leadscore.store import leads as lead_store
from leadscore.store import outbox, scores
from leadscore.store.database import Database
from leadscore.timeutil import iso


@dataclass(frozen=True)
class ActiveModel:
    """A model as the service runs it: its name, its active version and the model."""

    name: str
    version: int
    model: Model


class Session:
    """Leads being scored in one transaction. With `write=False` nothing is locked or written
    (reading a lead whose saved state is stale replays it in memory)."""

    def __init__(self, db: Database, connection: Connection, models: Sequence[ActiveModel],
                 now: int, *, write: bool = True):
        self.db, self.connection, self.now, self.write = db, connection, now, write
        self.models = {m.name: m for m in models}
        self._model_list = [m.model for m in models]
        self._main = Scorer(self._model_list) if models else None
        self._scorers: dict[str, Scorer] = {}
        self._latest: dict[str, int | None] = {}
        self._dirty: set[str] = set()
        self._identities: dict[tuple[str, str], str] = {}
        self.handoffs: list[str] = []

    # ---- loading

    def scorer(self, lead_id: str) -> Scorer | None:
        """The scorer holding the lead (loaded on first use); None without models."""
        if self._main is None:
            return None
        found = self._scorers.get(lead_id)
        return found if found is not None else self._load(lead_id)

    def as_of(self, lead_id: str) -> int:
        latest = self._latest.get(lead_id)
        return self.now if latest is None else max(self.now, latest)

    def _load(self, lead_id: str) -> Scorer:
        assert self._main is not None
        row = lead_store.load(self.connection, lead_id, lock=self.write)
        if row is None:
            raise EngineError(f"no lead {lead_id!r} in the store")
        saved = scores.states(self.connection, lead_id)
        usable = {name: r.state for name, r in saved.items()
                  if name in self.models and r.model_version == self.models[name].version}
        latest = max((r.latest for r in saved.values() if r.latest is not None), default=None)
        if set(self.models) - set(usable) and (
                latest is not None or (not saved and lead_store.has_events(self.connection,
                                                                           lead_id))):
            return self.rebuild(lead_id)
        try:
            self._main.load_state({"lead_id": lead_id, "traits": row.traits,
                                   "account": row.account, "latest": latest,
                                   "models": usable})
        except (EngineError, KeyError, TypeError, ValueError):
            return self.rebuild(lead_id)
        self._scorers[lead_id] = self._main
        self._latest[lead_id] = latest
        return self._main

    def rebuild(self, lead_id: str, prior: set[str] | None = None) -> Scorer:
        """Score the lead afresh from its events in the log (after a merge, an identify that
        brought anonymous history, a model change). `prior`: the models under which it was an
        MQL before; crossing the threshold now under another one raises a handoff."""
        if prior is None:
            prior = self._prior(lead_id)
        row = lead_store.load(self.connection, lead_id, lock=self.write)
        if row is None:
            raise EngineError(f"no lead {lead_id!r} in the store")
        scorer = Scorer(self._model_list)
        scorer.load_state({"lead_id": lead_id, "traits": row.traits, "account": row.account,
                           "latest": None, "models": {}})
        events = lead_store.events_of(self.connection, lead_id)
        replayed = scorer.update_many(events)
        latest = max((e.timestamp for e in events), default=None)
        self._scorers[lead_id] = scorer
        self._latest[lead_id] = latest
        self._dirty.add(lead_id)
        crossings = {h.model: h for h in replayed}        # the latest crossing per model
        for update in scorer.identify(lead_id, as_of=self.as_of(lead_id)):
            if update.score.mql and update.score.model not in prior:
                self._handoff(lead_id, crossings.get(update.score.model) or update.handoff)
        return scorer

    def _prior(self, lead_id: str) -> set[str]:
        """Models under which the lead is an MQL now, before a change."""
        scorer = self._scorers.get(lead_id)
        if scorer is None:
            return scores.mql_models(self.connection, lead_id)
        as_of, lead = self.as_of(lead_id), scorer.lead(lead_id)
        return {name for name, model in scorer.models.items()
                if model.applies(lead) and scorer.score(lead_id, name, as_of=as_of).mql}

    def ensure(self, kind: str, external_id: str) -> str:
        """The lead of a userId / anonymousId, created if new (remembered for the batch)."""
        key = (kind, external_id)
        found = self._identities.get(key)
        if found is None:
            found = self._identities[key] = lead_store.ensure(
                self.db, self.connection, kind, external_id, self.now)
        return found

    # ---- changes

    def event(self, lead_id: str, event: Event) -> None:
        scorer = self.scorer(lead_id)
        if scorer is None:
            return
        if event.lead_id != lead_id:
            event = dataclasses.replace(event, lead_id=lead_id)
        latest = self._latest.get(lead_id)
        self._latest[lead_id] = event.timestamp if latest is None else max(latest,
                                                                            event.timestamp)
        self._dirty.add(lead_id)
        self._handoffs(lead_id, scorer.update_one(event, as_of=self.as_of(lead_id)))

    def profile_changed(self, lead_id: str) -> None:
        """The lead's traits or account traits changed in the store: re-score its fit."""
        scorer = self.scorer(lead_id)
        if scorer is None:
            return
        row = lead_store.load(self.connection, lead_id)
        assert row is not None
        lead = scorer.lead(lead_id)
        lead.traits, lead.account = row.traits, row.account
        self._dirty.add(lead_id)
        self._handoffs(lead_id, scorer.identify(lead_id, as_of=self.as_of(lead_id)))

    def touch(self, lead_id: str) -> None:
        """Save the lead's score again (as of now) at the end."""
        if self.scorer(lead_id) is not None:
            self._dirty.add(lead_id)

    def merge(self, source: str, target: str) -> None:
        """Merge lead `source` into `target` and score the target from all their events."""
        prior = self._prior(source) | self._prior(target)
        lead_store.merge(self.connection, source, target, self.now)
        self._identities.clear()
        self._scorers.pop(source, None)
        self._latest.pop(source, None)
        self._dirty.discard(source)
        if self._main is not None:
            self.rebuild(target, prior)

    # ---- handoffs and saving

    def _handoffs(self, lead_id: str, updates: list[Update]) -> None:
        for update in updates:
            if update.handoff is not None:
                self._handoff(lead_id, update.handoff)

    def _handoff(self, lead_id: str, handoff: Handoff | None) -> None:
        if handoff is None or not self.write:
            return
        payload = self.payload(lead_id, handoff)
        if outbox.add(self.db, self.connection, handoff.id, "handoff", lead_id, handoff.model,
                      payload, self.now):
            self.handoffs.append(handoff.id)

    def payload(self, lead_id: str, handoff: Handoff) -> dict[str, Any]:
        """The handoff as delivered: the lead now, its reasons and the crossing event."""
        scorer = self._scorers[lead_id]
        score = scorer.score(lead_id, handoff.model, as_of=self.as_of(lead_id))
        row = lead_store.load(self.connection, lead_id)
        assert row is not None
        return {
            "id": handoff.id, "type": "handoff", "lead_id": lead_id, "model": handoff.model,
            "model_version": self.models[handoff.model].version, "at": iso(handoff.at),
            "traits": row.traits, "account": {"id": row.account_id, **row.account}
            if row.account_id else None,
            "score": score.score, "fit": score.fit, "engagement": score.engagement,
            "grade": score.grade, "temperature": score.temperature, "stage": score.stage,
            "reasons": [reason_json(scores.reason_dict(r)) for r in score.reasons],
            "event": event_json(handoff.event), "interests": [],
        }

    def flush(self) -> None:
        """Save the state and score of every lead changed."""
        if not self.write:
            return
        for lead_id in sorted(self._dirty):
            scorer = self._scorers[lead_id]
            as_of, lead = self.as_of(lead_id), scorer.lead(lead_id)
            found = {name: scorer.score(lead_id, name, as_of=as_of)
                     if scorer.models[name].applies(lead) else None for name in self.models}
            state = scorer.state(lead_id)["models"]
            for name, active in self.models.items():
                saved = state.get(name) or ModelState(scorer.models[name]).to_dict()
                scores.save(self.db, self.connection, lead_id, name, active.version,
                            self._latest.get(lead_id), saved, found[name], self.now)
        self._dirty.clear()


def reason_json(reason: dict[str, Any]) -> dict[str, Any]:
    last = reason.get("last_at")
    return {**reason, "last_at": iso(last) if last is not None else None}


def event_json(event: Event | None) -> dict[str, Any] | None:
    if event is None:
        return None
    return {"type": event.type, "event": event.event, "path": event.path,
            "timestamp": iso(event.timestamp), "properties": dict(event.properties)}
