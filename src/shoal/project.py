"""The composition root: a loaded project builds its lake, query connections, models and runners.

Settings (:mod:`shoal.config`) sit below every stage; this module sits above the stages it wires
together (lake, query, models), so each of those stays ignorant of the others' construction and
every entry point (CLI, server, notebooks, workers) gets them the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from shoal.config import Settings, find_project_dir, load_settings
from shoal.errors import NotFoundError
from shoal.lake import Lake, redact
from shoal.models import Model, ModelRunner, load_models, select_models
from shoal.query import Connection, connect_lake
from shoal.query.federation import Endpoint, attach_all, endpoints

__all__ = ["Project"]


class Project:
    """A loaded project. Immutable; the lake handle and the models are built on first use."""

    def __init__(self, directory: Path, settings: Settings) -> None:
        self.dir = directory
        self.settings = settings

    def __repr__(self) -> str:
        return f"Project({str(self.dir)!r}, name={self.settings.name!r})"

    @classmethod
    def load(cls, project: str | Path | None = None) -> Project:
        """``project``, else ``$SHOAL_PROJECT``, else the current directory."""
        directory = find_project_dir(project)
        return cls(directory, load_settings(directory))

    # -- the lake and queries ------------------------------------------------------------------
    @property
    def lake_root(self) -> str:
        root = self.settings.lake.root
        if "://" in root:
            return root
        return str((self.dir / root).resolve())

    @cached_property
    def lake(self) -> Lake:
        return Lake(self.lake_root, self.settings.lake.storage_options)

    def connect(self, *, databases: bool = True) -> Connection:
        """A query connection on the lake with the project's ``query`` settings (threads, memory),
        and the declared databases attached read-only under their names (``databases=False``: the
        lake only). A database that is down is listed in ``con.unreachable``, the rest work."""
        q = self.settings.query
        con = connect_lake(self.lake, threads=q.threads, memory_limit=q.memory_limit)
        if databases and self.settings.databases:
            attach_all(con, self.endpoints())
        return con

    def endpoints(self) -> list[Endpoint]:
        """The declared databases with their secrets resolved from the environment."""
        return endpoints(self.settings.databases, base_dir=self.dir)

    # -- models --------------------------------------------------------------------------------
    @cached_property
    def models(self) -> list[Model]:
        return load_models(self.settings.models, base_dir=self.dir)

    def runner(self, names: Sequence[str] | None = None) -> ModelRunner:
        """A model runner over ``names`` (all models when empty) and the state models they read,
        on a connection with the project's query settings. Use it as a context manager."""
        return ModelRunner(self.lake, select_models(self.models, names), con=self.connect())

    # -- pipelines -----------------------------------------------------------------------------
    @property
    def pipelines_path(self) -> Path:
        return self.dir / self.settings.pipelines_dir

    @property
    def pipeline_files(self) -> dict[str, Path]:
        folder = self.pipelines_path
        if not folder.is_dir():
            return {}
        files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
        return {f.stem: f for f in files}

    def pipeline_file(self, name: str) -> Path:
        files = self.pipeline_files
        if name in files:
            return files[name]
        candidate = Path(name)
        if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
            return candidate.resolve()
        close = difflib.get_close_matches(name, list(files), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(files) or 'none'}"
        raise NotFoundError(f"no pipeline {name!r} in {self.pipelines_path}{hint}")

    def describe(self) -> dict[str, Any]:
        return {
            "dir": str(self.dir),
            "name": self.settings.name,
            "lake": {"root": self.lake_root, "storage_options": redact(self.settings.lake.storage_options)},
            "pipelines": {k: str(v) for k, v in self.pipeline_files.items()},
            "models": self.settings.models,
            "databases": {ep.name: ep.describe() for ep in self.endpoints()},
        }
