"""The book a `Scorer` keeps: its compiled models, each with its rule dispatch, and every lead's
state. The per-event fold (`fold_one`), the evaluation (`evaluate`) and the vectorised fold
(`fold_many`) all work on it; the `Scorer` is its public face."""

from __future__ import annotations

from leadscore.engine.incremental.dispatch import Dispatch
from leadscore.engine.incremental.fit import Fit, fit_of
from leadscore.engine.incremental.lead_state import LeadState, ModelState
from leadscore.events import Lead
from leadscore.model.compiled import CompiledModel


class Book:
    """Every lead's state under a set of compiled models."""

    __slots__ = ("dispatch", "empty_fit", "leads", "models")

    def __init__(self, models: dict[str, CompiledModel]):
        self.models = models
        self.leads: dict[str, LeadState] = {}
        self.dispatch = {name: Dispatch(m) for name, m in models.items()}
        # The fit of a lead without traits, per model: the same for all such leads.
        self.empty_fit: dict[str, Fit] = {}

    def lead(self, lead_id: str) -> LeadState:
        """The lead's state, created (empty) for a new lead."""
        lead = self.leads.get(lead_id)
        if lead is None:
            lead = self.leads[lead_id] = LeadState(lead_id)
        return lead

    def fit(self, model: CompiledModel, lead: Lead, state: ModelState, as_of: int) -> Fit:
        """The lead's fit under `model` at `as_of`, kept in its state until its traits change
        (or, with `age_of` rules, until it is asked at another time)."""
        if state.fit is not None and state.fit.holds_at(as_of):
            return state.fit
        empty = not lead.traits and not lead.account
        if empty and model.name in self.empty_fit:
            # Without traits no `age_of` rule matches: the same fit at every time.
            state.fit = self.empty_fit[model.name]
            return state.fit
        state.fit = fit_of(model, lead, as_of)
        if empty and not model.fit_moves:
            self.empty_fit[model.name] = state.fit
        return state.fit
