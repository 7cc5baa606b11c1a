"""shoal: events, metrics and databases into one open lakehouse, queried with SQL."""

from __future__ import annotations

__version__ = "0.1.0"
