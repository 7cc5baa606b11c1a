"""How long a crashed child waits before its restart: :class:`shoal.retry.RetryPolicy`'s doubling,
counted in consecutive crashes (a child that stayed up ``reset_after_s`` starts again from one)."""

from __future__ import annotations

from shoal.config.settings import UpBackoff
from shoal.errors import ShoalError, Transient
from shoal.retry import RetryPolicy


class ChildCrashed(ShoalError, Transient):
    """A supervised child exited while it should have been running."""

    retry_after = 0.0  # no hint of its own: the policy's base delay applies


def restart_delay(backoff: UpBackoff, crashes: int) -> float:
    """Seconds before restarting a child after its ``crashes``-th consecutive crash (1-based)."""
    policy = RetryPolicy(attempts=1_000_000, base_s=backoff.base_s, max_delay_s=backoff.max_delay_s)
    return policy.delay(max(0, crashes - 1), ChildCrashed("crashed"))


def consecutive_crashes(previous: int, uptime_s: float, backoff: UpBackoff) -> int:
    """The crash count after one more crash: reset when the child had been up long enough."""
    return 1 if uptime_s >= backoff.reset_after_s else previous + 1
