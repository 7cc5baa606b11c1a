"""Cron schedules of maintenance jobs, through croniter (ADR 0024).

Five fields (minute hour day month weekday), or six with seconds first (``*/10 * * * * *``), or a
nickname (``@hourly``, ``@daily``). Times are UTC, so a schedule means the same on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter

from shoal.errors import ConfigError


@dataclass(frozen=True)
class Schedule:
    expression: str

    def __post_init__(self) -> None:
        if not croniter.is_valid(self.expression, second_at_beginning=self._seconds):
            raise ConfigError(f"not a cron expression: {self.expression!r}")

    @property
    def _seconds(self) -> bool:
        return len(self.expression.split()) == 6

    def next_after(self, t: float) -> float:
        """The first time strictly after ``t`` (a Unix timestamp) the schedule fires."""
        start = datetime.fromtimestamp(t, tz=UTC)
        it = croniter(self.expression, start, second_at_beginning=self._seconds)
        return float(it.get_next(float))
