"""The model format: schema, conditions, loading and validation."""

from leadscore.model.compiled import CompiledModel, compile_model
from leadscore.model.loader import load_model, load_models
from leadscore.model.schema import STAGES, Model

__all__ = ["STAGES", "CompiledModel", "Model", "compile_model", "load_model", "load_models"]
