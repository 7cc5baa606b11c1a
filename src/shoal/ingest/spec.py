"""The pipeline file: which Kafka topics land in which lake table, and how.

A pipeline is a YAML file (``pipelines/<name>.yaml`` in a project)::

    name: support_tickets
    topics: [support.ticket_events]          # or topic_pattern: "^support\\..*"
    brokers: ${KAFKA_BROKERS}
    client: {security.protocol: SASL_SSL, sasl.password: ${KAFKA_PASSWORD}}   # librdkafka settings
    decode: {format: protobuf, proto_file: protos/ticket_events.proto, message: shoal.support.v1.TicketEvent}
    table: support.ticket_events
    partition_by: [{column: event_date, from: occurred_at, transform: day}]
    derive: [{column: event_hour, from: occurred_at, transform: hour}]   # a column, not a partition
    transform_sql: SELECT *, upper(status) AS status_upper FROM batch
    flush: {max_rows: 100000, max_bytes: 64MiB, max_latency_s: 5}
    compaction: {every_commits: 50, target_file_mb: 128}
    refresh: [support.ticket_facts]          # optional: models refreshed after each commit

``${VAR}`` (or ``${VAR:-default}``) is replaced from the environment before validation. Relative
paths in ``decode`` are resolved against the project directory. Invalid input raises one
:class:`PipelineSpecError` naming the file and the field; client secrets are never shown.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shoal.decode import DecodeSpec
from shoal.ingest.errors import PipelineSpecError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
#: client settings whose values are secrets: never printed, logged or put in error messages
_SECRET_HINTS = ("password", "secret", "token", "key", "credential", "jaas")


def parse_size(value: int | float | str) -> int:
    """``64MiB`` / ``64MB`` / ``65536`` → bytes."""
    if isinstance(value, int | float):
        return int(value)
    m = _SIZE_RE.match(value)
    if not m:
        raise ValueError(f"not a size: {value!r} (use e.g. 64MiB, 500MB or a number of bytes)")
    unit = (m.group(2) or "").upper()
    base = 1024 if "I" in unit else 1000
    mult = 1 if unit in ("", "B") else base ** ("KMGT".index(unit[0]) + 1)
    return int(float(m.group(1)) * mult)


def is_secret_setting(key: str) -> bool:
    low = key.lower()
    return any(h in low for h in _SECRET_HINTS) and not low.endswith(".location")


def redact_client(client: dict[str, str]) -> dict[str, str]:
    return {k: ("***" if is_secret_setting(k) else v) for k, v in client.items()}


class PartitionColumn(BaseModel):
    """A partition column derived from a decoded field: ``event_date`` = day(``occurred_at``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    column: str = Field(min_length=1)
    source: str = Field(alias="from", min_length=1, description="decoded column the value comes from")
    transform: Literal["identity", "day", "hour"] = "identity"


class DerivedColumn(BaseModel):
    """A plain (non-partition) column derived from a decoded field: ``event_hour`` = hour(``occurred_at``).

    Written on every row (NULL where the source is NULL) and recorded in the table's sidecar when
    ingest creates the table, so queries read it instead of truncating the source (ADR 0047).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    column: str = Field(min_length=1)
    source: str = Field(alias="from", min_length=1, description="decoded column the value comes from")
    transform: Literal["day", "hour"]


class FlushPolicy(BaseModel):
    """Flush (one lake commit) when any limit is reached."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_rows: int = Field(100_000, gt=0)
    max_bytes: int = Field(64 * 1024 * 1024, gt=0)
    max_latency_s: float = Field(5.0, gt=0)

    @field_validator("max_bytes", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        return parse_size(v) if isinstance(v, str) else v


class CompactionPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    every_commits: int = Field(0, ge=0, description="0 disables background compaction")
    target_file_mb: int | None = Field(None, gt=0)


class PipelineSpec(BaseModel):
    """One validated pipeline file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    topics: tuple[str, ...] = ()
    topic_pattern: str | None = None
    brokers: str = Field(min_length=1)
    group_id: str | None = None
    client: dict[str, str] = Field(default_factory=dict, repr=False)
    decode: DecodeSpec
    table: str
    partition_by: tuple[PartitionColumn, ...] = ()
    derive: tuple[DerivedColumn, ...] = ()
    transform_sql: str | None = None
    flush: FlushPolicy = Field(default_factory=FlushPolicy)
    dead_letter_table: str | None = None
    compaction: CompactionPolicy = Field(default_factory=CompactionPolicy)
    start_from: Literal["earliest", "latest"] = Field(
        "earliest", description="where a partition the table has never seen starts"
    )
    consume_batch: int = Field(10_000, gt=0, le=1_000_000, description="messages per consume() call")
    refresh: tuple[str, ...] = Field(
        (),
        description="models the worker refreshes after each of its commits, with the state models "
        "they read (e.g. the revenue path of the billing models): the models take the commit's rows "
        "from memory instead of a watcher polling the table (ADR 0038)",
    )
    description: str = ""
    source_file: str | None = Field(None, exclude=True, description="the YAML file this came from")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError("must be letters, digits, '_', '-' or '.'")
        return v

    @field_validator("table", "dead_letter_table")
    @classmethod
    def _table(cls, v: str | None) -> str | None:
        if v is not None and not _TABLE_RE.match(v):
            raise ValueError(f"must be 'namespace.table' (letters, digits, '_'), got {v!r}")
        return v

    @field_validator("refresh")
    @classmethod
    def _models(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [name for name in v if not _TABLE_RE.match(name)]
        if bad:
            raise ValueError(f"model names must be 'namespace.table', got {', '.join(map(repr, bad))}")
        return v

    @field_validator("topic_pattern")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v.startswith("^"):
            raise ValueError("must start with '^' (librdkafka treats only such names as regexes)")
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"invalid regex: {exc}") from exc
        return v

    @field_validator("client", mode="before")
    @classmethod
    def _client(cls, v: Any) -> Any:
        # librdkafka takes strings; YAML gives bools/ints for e.g. `enable.idempotence: true`.
        if isinstance(v, dict):
            return {
                str(k): (
                    str(x).lower() if isinstance(x, bool) else str(x) if isinstance(x, int | float) else x
                )
                for k, x in v.items()
            }
        return v

    @model_validator(mode="after")
    def _check(self) -> PipelineSpec:
        if bool(self.topics) == bool(self.topic_pattern):
            raise ValueError("give exactly one of 'topics' (a list) or 'topic_pattern' (a '^regex')")
        for banned in ("enable.auto.commit", "group.id", "bootstrap.servers"):
            if banned in self.client:
                raise ValueError(f"client: {banned!r} is managed by shoal (use brokers/group_id)")
        cols = [p.column for p in self.partition_by]
        if len(set(cols)) != len(cols):
            raise ValueError("partition_by: a column is listed twice")
        derived = [d.column for d in self.derive]
        if len(set(derived)) != len(derived):
            raise ValueError("derive: a column is listed twice")
        both = sorted(set(cols) & set(derived))
        if both:
            raise ValueError(f"derive: {both[0]!r} is a partition column (list it in partition_by only)")
        own = [d.column for d in self.derive if d.column == d.source]
        if own:
            raise ValueError(f"derive: {own[0]!r} cannot be derived from itself")
        if self.dead_letter_table is not None and self.dead_letter_table == self.table:
            raise ValueError("dead_letter_table must differ from table")
        return self

    # -- derived ---------------------------------------------------------------------------------
    @property
    def group(self) -> str:
        return self.group_id or f"shoal-{self.name}"

    @property
    def dlq_table(self) -> str:
        return self.dead_letter_table or f"{self.table}_dead_letters"

    @property
    def partition_sources(self) -> dict[str, tuple[str, str]]:
        """Partition column -> (source column, transform): what ``Lake.create_table`` records."""
        return {p.column: (p.source, p.transform) for p in self.partition_by}

    @property
    def derived_columns(self) -> dict[str, tuple[str, str]]:
        """Derived plain column -> (source column, transform): what ``Lake.create_table`` records."""
        return {d.column: (d.source, d.transform) for d in self.derive}

    @property
    def subscription(self) -> list[str]:
        return [self.topic_pattern] if self.topic_pattern else list(self.topics)

    def describe(self) -> dict[str, Any]:
        """A printable view: client secrets are masked."""
        out = self.model_dump(mode="json", by_alias=True)
        out["client"] = redact_client(self.client)
        out["group_id"] = self.group
        out["dead_letter_table"] = self.dlq_table
        return out


# -- loading ---------------------------------------------------------------------------------------
def _expand_env(value: Any, where: str, file: str) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            var, default = m.group(1), m.group(2)
            if var in os.environ:
                return os.environ[var]
            if default is not None:
                return default
            raise PipelineSpecError(f"{file}: {where}: environment variable ${{{var}}} is not set")

        return _ENV_RE.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{where}.{k}" if where else str(k), file) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, f"{where}[{i}]", file) for i, v in enumerate(value)]
    return value


def _format_error(file: str, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"].removeprefix("Value error, ")
    got = first.get("input")
    secret = any(is_secret_setting(str(p)) for p in first["loc"]) or loc.startswith("client")
    shown = "" if secret or isinstance(got, dict | list) or got is None else f" (got {got!r})"
    return f"{file}: {loc}: {msg}{shown}"


def parse_pipeline(
    raw: Any, *, base_dir: Path, file: str = "<pipeline>", default_name: str | None = None
) -> PipelineSpec:
    """Validate an already-parsed pipeline mapping."""
    if not isinstance(raw, dict):
        raise PipelineSpecError(f"{file}: expected a mapping at the top level, got {type(raw).__name__}")
    data = _expand_env(raw, "", file)
    if "name" not in data and default_name:
        data["name"] = default_name
    data["source_file"] = file
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        raise PipelineSpecError(_format_error(file, exc)) from exc
    return spec.model_copy(update={"decode": spec.decode.resolve_paths(base_dir)})


def load_pipeline(path: str | Path, project_dir: str | Path | None = None) -> PipelineSpec:
    """Read and validate a pipeline YAML file; relative paths resolve against ``project_dir``."""
    p = Path(path)
    if not p.is_file():
        raise PipelineSpecError(f"{p}: pipeline file not found")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise PipelineSpecError(f"{p}:{where} invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    base = Path(project_dir) if project_dir is not None else p.parent
    return parse_pipeline(raw or {}, base_dir=base.resolve(), file=str(p), default_name=p.stem)
