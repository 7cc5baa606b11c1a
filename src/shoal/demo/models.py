"""The model modules the demo project declares (the use cases' incremental models)."""

from __future__ import annotations

import importlib.util

_CANDIDATES = [
    "shoal.usecases.support.models",
    "shoal.usecases.billing.models",
    "shoal.usecases.infra.models",
]
MODEL_MODULES = [
    m for m in _CANDIDATES if importlib.util.find_spec(m.rsplit(".", 1)[0]) and importlib.util.find_spec(m)
]
