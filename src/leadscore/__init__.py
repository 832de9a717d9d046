"""leadscore: an open-source lead scoring engine — fit, engagement and lifecycle, explained.

The engines load on first use (PEP 562 `__getattr__`): importing the store or the ingest path
does not pull in DuckDB, sqlglot or pyarrow."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from leadscore.errors import EngineError, EventError, InputError, LeadscoreError, ModelError
from leadscore.events import Event, Lead
from leadscore.explain import explain
from leadscore.model import Model, load_model, load_models
from leadscore.scores import Handoff, Reason, Score, Update

if TYPE_CHECKING:
    from leadscore.engine.batch import score_many
    from leadscore.engine.incremental import Scorer

__version__ = "0.1.0"

# name → the module it is loaded from on first use
_ENGINES = {"Scorer": "leadscore.engine.incremental", "score_many": "leadscore.engine.batch"}

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


def __getattr__(name: str) -> Any:
    module = _ENGINES.get(name)
    if module is None:
        raise AttributeError(f"module 'leadscore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value      # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
