"""The incremental engine's public face: `Scorer` scores leads one event or one trait update at a
time, constant work per event.

It keeps a `Book`: per lead and model, one `RuleState` per engagement rule and the latest time of
each lifecycle rule. Fit depends on traits only and is recomputed when they change. Scores are
read at any `as_of` not before the events folded in; decay is applied at read time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import repeat
from typing import Any, cast

from leadscore.engine.incremental.book import Book
from leadscore.engine.incremental.engagement import engagement_at
from leadscore.engine.incremental.evaluate import evaluate, mql_before, score_of
from leadscore.engine.incremental.fold_one import fold_one
from leadscore.engine.incremental.lead_state import LeadState, ModelState, read_time
from leadscore.errors import EngineError
from leadscore.events import Event, Lead, event_from_message
from leadscore.model.compiled import CompiledModel, compile_model
from leadscore.model.schema import Model
from leadscore.scores import Handoff, Score, Update
from leadscore.timeutil import now_us

# From this many events on, `update_many` folds them vectorised (`fold_many`); below, its
# set-up and the per-lead work it repeats per call cost more than it saves (measured on the
# benchmark model: 1,000-event batches 60k events/s, one at a time 68k, 10,000-event batches 97k).
MANY = 2_000


class Scorer:
    """Score leads one event at a time under one or several models.

    >>> scorer = Scorer(load_model("examples/b2c-art-supplies.yaml"))   # doctest: +SKIP
    >>> scorer.identify("ann", {"email": "ann@example.org"})            # doctest: +SKIP
    >>> scorer.update_one({"type": "track", "event": "Newsletter Subscribed", ...})
    """

    def __init__(self, models: Model | Sequence[Model]):
        models = [models] if isinstance(models, Model) else list(models)
        if not models:
            raise EngineError("a Scorer needs at least one model")
        self.models: dict[str, CompiledModel] = {}
        for model in models:
            if model.name in self.models:
                raise EngineError(f"two models are named {model.name!r}")
            self.models[model.name] = compile_model(model)
        # Every lead's state: what `fold_one`, `evaluate` and `fold_many` work on.
        self.book = Book(self.models)

    # ---- input

    def identify(self, lead_id: str, traits: Mapping[str, Any] | None = None,
                 account: Mapping[str, Any] | None = None, *,
                 as_of: object = None) -> list[Update]:
        """Merge traits (and account traits) into a lead's profile; re-score its fit."""
        book = self.book
        lead = book.lead(str(lead_id))
        when = read_time(lead, as_of)
        before = mql_before(book, lead, when)
        if traits:
            lead.lead.traits.update(traits)
        if account:
            lead.lead.account.update(account)
        for state in lead.models.values():
            state.fit = None
        return evaluate(book, lead, when, None, before)

    def update_one(self, event: Event | Mapping[str, Any], *,
                   as_of: object = None) -> list[Update]:
        """Fold in one event; return the new score under each model that applies.

        The scores of updates carry the numbers only (no `reasons`, for speed), except where
        a handoff is raised; `score()` gives the reasons at any time.
        """
        if not isinstance(event, Event):
            event = event_from_message(event)
        lead, when, before = fold_one(self.book, event, as_of)
        return evaluate(self.book, lead, when, event, before)

    def update_many(self, events: Iterable[Event | Mapping[str, Any]]) -> list[Handoff]:
        """Fold in many events (in any order); return the handoffs they raised.

        The same state and handoffs as `update_one` on each event in turn (the state up to
        rounding in the last bits); from `MANY` events on, folded in vectorised batches
        (`fold_many`).
        """
        given = list(events)
        if all(map(isinstance, given, repeat(Event))):
            batch = cast(list[Event], given)
        else:
            batch = [e if isinstance(e, Event) else event_from_message(e) for e in given]
        # A model with filters of its own folds event by event (`fold_one` asks them).
        if len(batch) >= MANY and all(d.filters is None for d in self.book.dispatch.values()):
            # numpy and pyarrow: imported when needed
            from leadscore.engine.incremental.fold_many import fold_many

            return fold_many(self, batch)
        return self._update_each(batch)

    def crossings(self, lead_id: str, *, as_of: object = None) -> list[Handoff]:
        """The handoffs time alone raises for a lead at `as_of` (default: now): negative
        points that decay can lift a score over the MQL threshold between two of its events.
        An event or a trait change checks for a crossing by itself; this asks between them
        (the service's refresh does), so that such a lead is handed off without waiting for
        its next event — once, like every crossing."""
        book = self.book
        lead = book.leads.get(str(lead_id))
        if lead is None:
            return []
        when = read_time(lead, as_of, default_now=True)
        before = mql_before(book, lead, when)
        return [u.handoff for u in evaluate(book, lead, when, None, before, scores=False)
                if u.handoff is not None]

    def _update_each(self, events: Iterable[Event]) -> list[Handoff]:
        """`update_many` one event at a time."""
        book = self.book
        handoffs: list[Handoff] = []
        for event in events:
            lead, when, before = fold_one(book, event, None)
            for update in evaluate(book, lead, when, event, before, scores=False):
                if update.handoff is not None:
                    handoffs.append(update.handoff)
        return handoffs

    # ---- output

    def score(self, lead_id: str, model: str | None = None, *,
              as_of: object = None) -> Score:
        """The lead's score under a model (default: the only one) at `as_of` (default: now)."""
        lead = self.book.leads.get(str(lead_id))
        if lead is None:
            raise EngineError(f"unknown lead {lead_id!r}")
        compiled = self._model(model)
        state = lead.models.get(compiled.name)
        if state is None:
            state = lead.models[compiled.name] = ModelState(compiled)
        when = read_time(lead, as_of, default_now=True)
        if not self.book.fit(compiled, lead.lead, state, when).applies:
            raise EngineError(f"model {compiled.name!r} does not apply to lead {lead_id!r} "
                              "(its applies_to does not hold)")
        return score_of(self.book, compiled, lead, state, when)

    def scores(self, *, as_of: object = None) -> Iterator[Score]:
        """Every lead's score under every model that applies to it."""
        when = now_us() if as_of is None else read_time(LeadState(""), as_of)
        for lead in self.book.leads.values():
            for name, compiled in self.models.items():
                if compiled.applies(lead.lead):
                    state = lead.models.get(name) or ModelState(compiled)
                    yield score_of(self.book, compiled, lead, state,
                                   max(when, lead.latest or when))

    def leads(self) -> list[str]:
        return list(self.book.leads)

    def peek(self, lead_id: str, model: str, as_of: int) -> tuple[float, bool] | None:
        """(engagement, disqualified) of a lead under a model at `as_of` (µs), without
        reasons; None where the lead is unknown or the model does not apply to it."""
        lead = self.book.leads.get(lead_id)
        if lead is None:
            return None
        compiled = self.models[model]
        state = lead.models.get(model)
        if state is None:
            state = lead.models[model] = ModelState(compiled)
        fit = self.book.fit(compiled, lead.lead, state, as_of)
        if not fit.applies:
            return None
        return engagement_at(compiled, state, as_of)[0], fit.disqualify_reason is not None

    def latest(self, lead_id: str) -> int | None:
        """The time of the lead's latest event folded in."""
        lead = self.book.leads.get(lead_id)
        return None if lead is None else lead.latest

    def lead(self, lead_id: str) -> Lead:
        return self.book.leads[lead_id].lead

    # ---- state, for the store

    def state(self, lead_id: str) -> dict[str, Any]:
        lead = self.book.leads[lead_id]
        return {"lead_id": lead_id, "traits": lead.lead.traits, "account": lead.lead.account,
                "latest": lead.latest,
                "models": {name: s.to_dict() for name, s in lead.models.items()}}

    def load_state(self, data: Mapping[str, Any]) -> None:
        """Load a lead's state (as `state` gives it); a model's state may also be a
        `ModelState` already decoded (it is used as is, not copied)."""
        lead = self.book.lead(str(data["lead_id"]))
        lead.lead.traits, lead.lead.account = dict(data["traits"]), dict(data["account"])
        lead.latest = data["latest"]
        lead.models = {name: s if isinstance(s, ModelState) else
                       ModelState.from_dict(self.models[name], s)
                       for name, s in data["models"].items() if name in self.models}

    def model_states(self, lead_id: str) -> dict[str, ModelState]:
        """The lead's live state under each model (not a copy)."""
        return self.book.leads[lead_id].models

    # ---- internals

    def _model(self, name: str | None) -> CompiledModel:
        if name is None:
            if len(self.models) > 1:
                raise EngineError("several models are loaded: name one "
                                  f"({', '.join(self.models)})")
            return next(iter(self.models.values()))
        try:
            return self.models[name]
        except KeyError:
            raise EngineError(f"unknown model {name!r}; loaded: "
                              f"{', '.join(self.models)}") from None
