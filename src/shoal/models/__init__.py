"""The models stage: incremental SQL models over lake tables."""

from __future__ import annotations

from shoal.models.context import RefreshResult
from shoal.models.errors import ModelError
from shoal.models.model import Model, ScopeInputs, SliceInputs, import_object, load_models, select_models
from shoal.models.runner import ModelRunner, order_models

__all__ = [
    "Model",
    "ModelError",
    "ModelRunner",
    "RefreshResult",
    "ScopeInputs",
    "SliceInputs",
    "import_object",
    "load_models",
    "order_models",
    "select_models",
]
