"""A shoal project: a directory with ``shoal.yaml``, pipelines and models.

Settings come from the project file, overridden by ``SHOAL_*`` environment variables
(nested with ``__``, e.g. ``SHOAL_LAKE__ROOT=s3://lake/prod``). Everything is frozen once
loaded; errors name the file, the field and what was expected, on one line.
"""

from __future__ import annotations

import importlib
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shoal.errors import ConfigError, NotFoundError

if TYPE_CHECKING:
    from shoal.lake import Lake
    from shoal.models import Model
    from shoal.query import Connection

PROJECT_FILE = "shoal.yaml"


class LakeSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    root: str = Field("lake", description="local path (relative to the project) or s3://bucket/prefix")
    storage_options: dict[str, str] = Field(default_factory=dict, description="object-store options")


class QuerySettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    threads: int | None = Field(None, ge=1)
    memory_limit: str | None = Field(None, description="DuckDB memory_limit, e.g. '4GB'")


class ServeSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8787, ge=0, le=65535)


class Settings(BaseSettings):
    """The validated content of ``shoal.yaml`` plus ``SHOAL_*`` overrides."""

    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", env_prefix="SHOAL_", env_nested_delimiter="__"
    )

    name: str = "shoal"
    description: str = ""
    lake: LakeSettings = Field(default_factory=LakeSettings)
    pipelines_dir: str = "pipelines"
    models: list[str] = Field(
        default_factory=list, description="python modules exposing models(), or YAML model files"
    )
    query: QuerySettings = Field(default_factory=QuerySettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the file, so one project file serves dev and prod.
        return (env_settings, init_settings)


def _format_validation(path: Path, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    got = first.get("input")
    shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
    return f"{path}: {loc}: {first['msg']}{shown}"


def find_project_dir(project: str | Path | None) -> Path:
    """``--project``, else ``SHOAL_PROJECT``, else the current directory."""
    chosen = project or os.environ.get("SHOAL_PROJECT") or "."
    return Path(chosen).expanduser().resolve()


class Project:
    """A loaded project. Immutable; the lake handle is created on first use."""

    def __init__(self, directory: Path, settings: Settings) -> None:
        self.dir = directory
        self.settings = settings

    def __repr__(self) -> str:
        return f"Project({str(self.dir)!r}, name={self.settings.name!r})"

    @classmethod
    def load(cls, project: str | Path | None = None) -> Project:
        directory = find_project_dir(project)
        path = directory / PROJECT_FILE
        if not path.is_file():
            raise ConfigError(f"{path}: no shoal project here (create one with `shoal init {directory}`)")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{path}:{where} invalid YAML: {getattr(exc, 'problem', exc)}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
        try:
            settings = Settings(**raw)
        except ValidationError as exc:
            raise ConfigError(_format_validation(path, exc)) from exc
        return cls(directory, settings)

    # -- derived ---------------------------------------------------------------------------------
    @property
    def lake_root(self) -> str:
        root = self.settings.lake.root
        if "://" in root:
            return root
        return str((self.dir / root).resolve())

    @cached_property
    def lake(self) -> Lake:
        from shoal.lake import Lake

        return Lake(self.lake_root, self.settings.lake.storage_options)

    def connect(self) -> Connection:
        """A query connection on the lake with the project's ``query`` settings (threads, memory)."""
        from shoal.query import connect_lake

        q = self.settings.query
        return connect_lake(self.lake, threads=q.threads, memory_limit=q.memory_limit)

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
        import difflib

        close = difflib.get_close_matches(name, list(files), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(files) or 'none'}"
        raise NotFoundError(f"no pipeline {name!r} in {self.pipelines_path}{hint}")

    @cached_property
    def models(self) -> list[Model]:
        from shoal.models import load_models

        return load_models(self.settings.models, base_dir=self.dir)

    def describe(self) -> dict[str, Any]:
        from shoal.lake import redact

        return {
            "dir": str(self.dir),
            "name": self.settings.name,
            "lake": {"root": self.lake_root, "storage_options": redact(self.settings.lake.storage_options)},
            "pipelines": {k: str(v) for k, v in self.pipeline_files.items()},
            "models": self.settings.models,
        }


def import_object(spec: str) -> Any:
    """``package.module:attr`` or ``package.module`` → the object."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc}") from exc
    return getattr(module, attr) if attr else module


PROJECT_TEMPLATE = """\
# A shoal project. Every setting can be overridden by SHOAL_* environment variables,
# e.g. SHOAL_LAKE__ROOT=s3://bucket/prefix SHOAL_LAKE__STORAGE_OPTIONS__AWS_ENDPOINT_URL=...
name: {name}
description: ""
lake:
  root: lake            # a path relative to this file, or s3://bucket/prefix
  storage_options: {{}}   # for S3: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION
pipelines_dir: pipelines
models: []              # python modules exposing models(), e.g. shoal.usecases.support.models
"""


def init_project(directory: Path, name: str | None = None, *, exist_ok: bool = False) -> Path:
    """Create a project skeleton; refuse to overwrite an existing project file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / PROJECT_FILE
    if path.exists() and not exist_ok:
        raise ConfigError(f"{path}: a project already exists here")
    if not path.exists():
        path.write_text(PROJECT_TEMPLATE.format(name=name or directory.name or "shoal"))
    (directory / "pipelines").mkdir(exist_ok=True)
    (directory / "lake").mkdir(exist_ok=True)
    return path
