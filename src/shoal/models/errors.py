"""The models stage's error."""

from __future__ import annotations

from shoal.errors import ShoalError, Terminal


class ModelError(ShoalError, Terminal):
    """A model's SQL failed or does not fit its declaration."""
