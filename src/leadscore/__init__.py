"""leadscore: an open-source lead scoring engine — fit, engagement and lifecycle, explained."""

from leadscore.errors import EventError, InputError, LeadscoreError, ModelError
from leadscore.model import Model, load_model, load_models

__version__ = "0.1.0"

__all__ = [
    "EventError",
    "InputError",
    "LeadscoreError",
    "Model",
    "ModelError",
    "__version__",
    "load_model",
    "load_models",
]
