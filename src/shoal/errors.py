"""The root of every error shoal raises on purpose.

Each pipeline stage defines its own exceptions under this root and mixes in
:class:`Transient` (worth retrying, maybe after ``retry_after`` seconds) or
:class:`Terminal` (retrying cannot help: dead-letter the record or stop the
pipeline). Runners decide with ``isinstance`` instead of parsing messages.
"""

from __future__ import annotations


class ShoalError(Exception):
    """Root of all shoal errors. ``str(err)`` is one line meant for a human."""


class Transient:
    """Mixin: the operation may succeed if retried (network, broker, object store)."""

    retry_after: float = 1.0


class Terminal:
    """Mixin: retrying the same input cannot succeed (bad data, bad config)."""


class ConfigError(ShoalError, Terminal):
    """The project file, a pipeline file or a setting is invalid."""


class NotFoundError(ShoalError, Terminal):
    """A named object (table, pipeline, model, version) does not exist."""


class StorageUnavailable(ShoalError, Transient):
    """The lake's storage (local disk or object store) could not be reached."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OptionalDependencyError(ShoalError, Terminal):
    """A feature needs an optional extra that is not installed."""

    def __init__(self, feature: str, extra: str, package: str) -> None:
        super().__init__(f"{feature} needs the optional dependency {package!r}: pip install 'shoal[{extra}]'")


def is_transient(err: BaseException) -> bool:
    return isinstance(err, Transient)
