"""Settings of a shoal project: ``shoal.yaml`` plus ``SHOAL_*`` environment overrides.

Settings come from the project file, overridden by ``SHOAL_*`` environment variables
(nested with ``__``, e.g. ``SHOAL_LAKE__ROOT=s3://lake/prod``). Everything is frozen once
loaded; errors name the file, the field and what was expected, on one line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shoal.errors import ConfigError

PROJECT_FILE = "shoal.yaml"


class LakeSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    root: str = Field("lake", description="local path (relative to the project) or s3://bucket/prefix")
    storage_options: dict[str, str] = Field(default_factory=dict, description="object-store options")


class QuerySettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    threads: int | None = Field(None, ge=1)
    memory_limit: str | None = Field(None, description="DuckDB memory_limit, e.g. '4GB'")


class ServeLimits(BaseModel):
    """Per-query limits of served SQL (HTTP API and Postgres wire protocol alike)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_s: float = Field(30.0, gt=0, description="a query running longer is interrupted")
    max_rows: int = Field(1_000_000, ge=1, description="rows past this end the result with an error")
    max_bytes: int = Field(512 * 1024 * 1024, ge=1, description="result bytes (Arrow) past this: error")
    max_concurrent: int = Field(4, ge=1, description="queries running at once; more wait in a queue")
    queue_timeout_s: float = Field(10.0, ge=0, description="how long a query may wait for a slot")
    memory_limit: str | None = Field("2GB", description="DuckDB memory_limit of the serving engine")
    threads: int | None = Field(None, ge=1, description="DuckDB threads of the serving engine")


class ServeSettings(BaseModel):
    """``shoal serve``: where the HTTP API, dashboard and Postgres wire listener bind."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8787, ge=0, le=65535)
    pg_port: int | None = Field(
        5433, ge=0, le=65535, description="Postgres wire protocol port (null: no wire listener)"
    )
    workers: int = Field(1, ge=1, le=64, description="HTTP worker threads for blocking work")
    tls_cert: str | None = Field(None, description="PEM certificate (path); with tls_key turns on TLS")
    tls_key: str | None = Field(None, description="PEM private key (path)")
    tokens_file: str = Field(
        ".shoal/tokens.json", description="hashed access tokens (relative to the project directory)"
    )
    pg_cleartext: bool = Field(
        True,
        description="wire protocol: also accept the token as a cleartext password (false: SCRAM-SHA-256 "
        "only, user name = token id; ADR 0034)",
    )
    limits: ServeLimits = Field(default_factory=ServeLimits)

    @model_validator(mode="after")
    def _tls_pair(self) -> ServeSettings:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together (got only one)")
        if self.pg_port is not None and self.pg_port != 0 and self.pg_port == self.port:
            raise ValueError(f"pg_port {self.pg_port} is the HTTP port too")
        return self


class DatabaseSyncSettings(BaseModel):
    """How ``shoal sync NAME`` copies a database's tables into the lake."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["cdc", "cursor", "full"] = Field(
        "cdc", description="cdc: snapshot then binlog/pgoutput; cursor: by cursor_column; full: refresh"
    )
    tables: list[str] = Field(default_factory=list, description="tables to copy (default: all)")
    namespace: str | None = Field(None, description="lake namespace (default: NAME_replica)")
    chunk_rows: int = Field(50_000, ge=1, description="rows per snapshot chunk (bounds memory)")
    cursor_column: str = Field("updated_at", description="cursor mode: an increasing column")
    delete_check_every: int = Field(10, ge=1, description="cursor mode: key scan every N rounds")
    slot: str | None = Field(None, description="PostgreSQL: replication slot (default: shoal_NAME)")
    publication: str | None = Field(None, description="PostgreSQL: publication (default: shoal_NAME)")
    server_id: int = Field(54_321, ge=1, description="MySQL: the replica server id the sync uses")
    layout: Literal["copy-on-write", "merge-on-read"] = Field(
        "copy-on-write",
        description="cdc mode: copy-on-write merges each round's changes into the files holding them; "
        "merge-on-read appends them and folds them in by a periodic compaction (ADR 0040)",
    )
    compact_every_s: float = Field(
        60.0, ge=0, description="merge-on-read: seconds between compactions while following (0: never)"
    )

    @model_validator(mode="after")
    def _layout_needs_cdc(self) -> DatabaseSyncSettings:
        if self.layout == "merge-on-read" and self.mode != "cdc":
            raise ValueError(f"sync.layout merge-on-read needs mode: cdc (mode is {self.mode})")
        return self


class DatabaseSettings(BaseModel):
    """One operational database (``databases.NAME``): connection facts, never a secret.

    The password comes from the environment variable named by ``password_env`` (default
    ``SHOAL_DB_<NAME>_PASSWORD``), so ``shoal.yaml`` can be committed and nothing prints it.

    ``kind: sqlite`` is an embedded database file (``database``: its path, relative to the
    project): no server, no user, and no change log, so it syncs in ``cursor`` (its default) or
    ``full`` mode only. The demo's operational databases are SQLite files (ADR 0032).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["mysql", "postgres", "sqlite"]
    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=1, le=65535, description="default: 3306 / 5432")
    database: str = Field(description="database name; sqlite: the file's path (relative to the project)")
    user: str = Field("", description="login user (mysql/postgres; required there)")
    password_env: str | None = Field(None, description="env var holding the password")
    schema_: str | None = Field(None, alias="schema", description="PostgreSQL schema (default public)")
    tls: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] | None = Field(
        None, description="TLS mode (also SHOAL_DB_<NAME>_TLS); CA file from SHOAL_DB_<NAME>_TLS_CA"
    )
    sync: DatabaseSyncSettings = Field(default_factory=DatabaseSyncSettings)

    @model_validator(mode="before")
    @classmethod
    def _sqlite_syncs_by_cursor(cls, data: object) -> object:
        # SQLite keeps no change log: its sync defaults to cursor mode instead of cdc
        if isinstance(data, dict) and data.get("kind") == "sqlite":
            sync = data.get("sync")
            if sync is None:
                return {**data, "sync": {"mode": "cursor"}}
            if isinstance(sync, dict) and "mode" not in sync:
                return {**data, "sync": {**sync, "mode": "cursor"}}
        return data

    @model_validator(mode="after")
    def _kind_needs(self) -> DatabaseSettings:
        if self.kind == "sqlite":
            if self.sync.mode == "cdc":
                raise ValueError("sqlite has no change log to capture: sync.mode must be cursor or full")
        elif not self.user:
            raise ValueError(f"{self.kind} needs a user")
        return self


# -- shoal up: what the supervisor runs (appended; see docs/operations.md "Running everything") ------
class UpBackoff(BaseModel):
    """How a crashed child of ``shoal up`` is restarted: ``base_s * 2**n`` capped at ``max_delay_s``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_s: float = Field(1.0, gt=0, description="delay before the first restart")
    max_delay_s: float = Field(60.0, gt=0, description="the delay never grows past this")
    reset_after_s: float = Field(60.0, gt=0, description="a child up this long counts as healthy again")


class UpWatcher(BaseModel):
    """One ``shoal refresh --watch`` child over some models (all of them when empty)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    models: list[str] = Field(default_factory=list)
    interval_s: float = Field(1.0, gt=0)


class UpScrape(BaseModel):
    """One ``shoal metrics scrape TARGETS_FILE`` child."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    targets_file: str = Field(min_length=1, description="file_sd targets (relative to the project)")
    job: str = "shoal"
    interval_s: float = Field(300.0, gt=0)


class UpRemoteWrite(BaseModel):
    """One ``shoal metrics remote-write`` receiver child."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(9201, ge=1, le=65535)


class UpMaintenance(BaseModel):
    """A scheduled maintenance job: ``action`` over ``tables`` (all when empty) on a cron schedule.

    ``schedule`` is a cron expression (5 fields, or 6 with seconds first: ``*/10 * * * * *``) or a
    nickname (``@hourly``, ``@daily``); times are UTC. Each run is its own short-lived child."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["compact", "vacuum", "checkpoint"]
    schedule: str = Field(min_length=1)
    tables: list[str] = Field(default_factory=list)
    retention_hours: float = Field(168.0, ge=0, description="vacuum: keep files of versions this recent")
    full: bool = Field(
        False, description="vacuum: also files no version ever referenced (a killed Spark job's output)"
    )
    target_file_mb: int | None = Field(None, gt=0, description="compact: target file size")
    timeout_s: float = Field(3600.0, gt=0, description="a run still going after this is stopped")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        from croniter import croniter

        fields = v.split()
        if not croniter.is_valid(v, second_at_beginning=len(fields) == 6):
            raise ValueError(f"not a cron expression: {v!r} (e.g. '0 3 * * *' or '*/10 * * * * *')")
        return v


class UpLogs(BaseModel):
    """``up.logs``: the log receiver, Kafka consumer and search indexer ``shoal up`` runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    receive: bool = Field(False, description="run `shoal logs receive` (HTTP JSON lines)")
    host: str = "127.0.0.1"
    port: int = Field(9300, ge=1, le=65535)
    topics: list[str] = Field(default_factory=list, description="Kafka topics of JSON log lines")
    brokers: str | None = Field(None, description="Kafka bootstrap servers of topics:")
    index: bool = Field(True, description="keep the search index up to date (`shoal logs index --follow`)")


#: maintenance when shoal.yaml declares none (``maintenance: {}`` turns it off)
DEFAULT_MAINTENANCE: dict[str, dict[str, object]] = {
    "compact": {"action": "compact", "schedule": "17 * * * *"},
    "checkpoint": {"action": "checkpoint", "schedule": "47 * * * *"},
    "vacuum": {"action": "vacuum", "schedule": "30 3 * * *", "retention_hours": 168},
}


class UpSettings(BaseModel):
    """``up:``: what ``shoal up`` starts and supervises. Defaults follow what the project declares:
    every pipeline file, one watcher over all models, a continuous sync per database."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workers: int = Field(1, ge=0, le=256, description="workers per pipeline unless pipelines: says")
    pipelines: dict[str, int] = Field(
        default_factory=dict, description="workers of a pipeline by name (0: not run)"
    )
    watchers: dict[str, UpWatcher] | None = Field(
        None, description="model watchers by name (default: one over every model when models exist)"
    )
    syncs: list[str] | None = Field(None, description="databases synced continuously (default: all)")
    serve: bool = Field(False, description="run `shoal serve` too")
    scrape: dict[str, UpScrape] = Field(default_factory=dict)
    remote_write: dict[str, UpRemoteWrite] = Field(default_factory=dict)
    logs: UpLogs | None = Field(None, description="logs receiver / consumer / indexer (none by default)")
    maintenance: dict[str, UpMaintenance] = Field(
        default_factory=lambda: {k: UpMaintenance.model_validate(v) for k, v in DEFAULT_MAINTENANCE.items()}
    )
    static_membership: bool = Field(
        True, description="give each worker a group.instance.id: a restarted worker gets its partitions back"
    )
    backoff: UpBackoff = Field(default_factory=UpBackoff)
    stop_timeout_s: float = Field(30.0, gt=0, description="SIGTERM, then SIGKILL after this")
    run_dir: str = Field(".shoal/run", description="pid, state, events and logs (relative to the project)")
    late_after_s: float = Field(
        300.0, gt=0, description="shoal status: a pipeline or model behind for this long is late"
    )
    small_file_mb: float = Field(16.0, gt=0, description="shoal status: data files below this are small")


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
    databases: dict[str, DatabaseSettings] = Field(
        default_factory=dict, description="operational databases: live in SQL, copied by `shoal sync`"
    )
    up: UpSettings = Field(default_factory=UpSettings, description="what `shoal up` runs")

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


def load_settings(directory: Path) -> Settings:
    """Read and validate ``directory/shoal.yaml``; every error is one line naming file and field."""
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
        return Settings(**raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation(path, exc)) from exc


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
