"""The model modules the demo project declares (the use cases' incremental models)."""

from __future__ import annotations

MODEL_MODULES = ["shoal.usecases.support.models", "shoal.usecases.billing.models"]
