"""Evaluate models against what converted, and learn point values from data.

`evaluate(models, events, leads, outcomes, as_of=...)` backtests models as of a cut-off;
`learn(events, leads, outcomes, ...)` fits a points model and returns it with its YAML.
Imports are lazy: scikit-learn and pandas load when first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from leadscore.errors import missing_extra

_EXPORTS = {
    "evaluate": "leadscore.learn.backtest", "Backtest": "leadscore.learn.backtest",
    "Evaluation": "leadscore.learn.backtest", "learn": "leadscore.learn.scorecard",
    "Learned": "leadscore.learn.scorecard", "LearnError": "leadscore.learn.scorecard",
    "Outcomes": "leadscore.learn.outcomes", "read_outcomes": "leadscore.learn.outcomes",
    "fit_predictive": "leadscore.learn.predictive",
    "evaluate_repeat": "leadscore.learn.repeat",
    "generate_planted_world": "leadscore.demo.planted",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        try:
            module = import_module(_EXPORTS[name])
        except ImportError as exc:     # an optional dependency: say which extra installs it
            line = missing_extra(exc)
            if line is None:
                raise
            raise ModuleNotFoundError(f"leadscore.learn.{name}: {line}", name=exc.name) \
                from None
        return getattr(module, name)
    raise AttributeError(f"module 'leadscore.learn' has no attribute {name!r}")
