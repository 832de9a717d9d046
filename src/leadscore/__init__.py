"""leadscore: an open-source lead scoring engine — fit, engagement and lifecycle, explained."""

from leadscore.engine.batch import score_many
from leadscore.engine.incremental import Scorer
from leadscore.errors import EngineError, EventError, InputError, LeadscoreError, ModelError
from leadscore.events import Event, Lead
from leadscore.explain import explain
from leadscore.model import Model, load_model, load_models
from leadscore.scores import Handoff, Reason, Score, Update

__version__ = "0.1.0"

__all__ = [
    "EngineError",
    "Event",
    "EventError",
    "Handoff",
    "InputError",
    "Lead",
    "LeadscoreError",
    "Model",
    "ModelError",
    "Reason",
    "Score",
    "Scorer",
    "Update",
    "__version__",
    "explain",
    "load_model",
    "load_models",
    "score_many",
]
