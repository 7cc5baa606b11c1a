"""The models stage: incremental SQL models over lake tables."""

from __future__ import annotations

from shoal.models.model import Model, load_models
from shoal.models.runner import ModelError, ModelRunner, RefreshResult, order_models

__all__ = ["Model", "ModelError", "ModelRunner", "RefreshResult", "load_models", "order_models"]
