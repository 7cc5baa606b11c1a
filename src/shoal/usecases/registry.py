"""The use-case plug point: what a use case contributes, found through the ``shoal.usecases``
entry points (``[project.entry-points."shoal.usecases"]`` in a package's pyproject.toml).

Each entry point names a :class:`UseCase`. Its parts are import strings rather than objects, so
describing a use case imports nothing heavy, and nothing here imports the stages that use them:
the CLI mounts ``cli`` as ``shoal <name> …``, the demo runs ``demo_step``, a project lists
``models`` in its ``models:``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from pkgutil import resolve_name
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, Unpack

from shoal.errors import ConfigError

if TYPE_CHECKING:
    from shoal.models import Model
    from shoal.project import Project

ENTRY_POINT_GROUP = "shoal.usecases"


class UseCaseError(ConfigError):
    """A use case's entry point or one of its import strings does not load."""


class StreamSpec(TypedDict):
    """What a demo step streams (:meth:`StepContext.stream`'s keyword arguments)."""

    pipeline: str  # the pipeline's name, installed from pipeline_yaml
    pipeline_yaml: str  # reads ${KAFKA_BROKERS} and ${<topic_env>}
    proto: Path  # the events' schema, copied into the project
    topic: str
    topic_env: str
    events: Iterable[tuple[bytes, bytes]]  # (key, value) records
    models: Sequence[Model]  # refreshed once every event landed
    try_sql: str  # a query the demo's summary suggests


class StepContext(Protocol):
    """What a use case's demo step is given (``shoal.demo.DemoContext`` provides it)."""

    @property
    def project(self) -> Project: ...

    @property
    def small(self) -> bool: ...

    @property
    def databases(self) -> Mapping[str, str]:
        """Operational databases the demo was given (``{"mysql": URL, "postgres": URL}``); a use
        case without one of them uses an embedded stand-in."""

    def say(self, text: str) -> None:
        """A progress line for the person watching."""

    def suggest_sql(self, query: str) -> None:
        """A query the demo's summary offers to try."""

    def stream(self, **spec: Unpack[StreamSpec]) -> dict[str, Any]:
        """Stream ``events`` through an embedded Kafka and the pipeline, then refresh ``models``."""


DemoStep = Callable[[StepContext], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class UseCase:
    """One use case. ``models``: the module whose ``models()`` a project loads (a ``models:``
    entry of shoal.yaml); ``cli``: ``"module:attr"`` of a Typer group; ``demo_step``:
    ``"module:attr"`` of a :data:`DemoStep`, shown as ``title`` in the demo."""

    name: str
    title: str
    models: str | None = None
    cli: str | None = None
    demo_step: str | None = None


def load(import_string: str, what: str) -> Any:
    """The object ``"package.module:attr"`` names; one-line UseCaseError when it does not load."""
    try:
        return resolve_name(import_string)
    except (ImportError, AttributeError, ValueError) as exc:
        raise UseCaseError(f"{what} {import_string!r} does not load: {exc}") from exc


def discover() -> list[UseCase]:
    """Every installed use case, by name. An entry point must name a UseCase of its own name."""
    found: list[UseCase] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        usecase = load(ep.value, f"use case entry point {ep.name}")
        if not isinstance(usecase, UseCase) or usecase.name != ep.name:
            raise UseCaseError(
                f"use case entry point {ep.name} ({ep.value}) must name a UseCase called {ep.name!r}"
            )
        found.append(usecase)
    return sorted(found, key=lambda u: u.name)
