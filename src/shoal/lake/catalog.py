"""The lake: a root holding ``namespace/table`` Delta tables, and their catalog."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
from deltalake import DeltaTable

from shoal.errors import ConfigError, NotFoundError
from shoal.lake.errors import TableExists
from shoal.lake.storage import LakeLocation
from shoal.lake.table import Table, translate_errors

_NAME = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")
#: per-table sidecar with catalog fields Delta's metadata has no place for
SIDECAR = "_shoal_table.json"
#: how a partition column can be derived from another column of the same row (the ingest spec's
#: ``partition_by[].transform``): ``day`` = the UTC date, ``hour`` = the UTC hour's start
PARTITION_TRANSFORMS = ("identity", "day", "hour")
#: how a plain (non-partition) column can be derived (the ingest spec's ``derive[].transform``)
DERIVED_TRANSFORMS = ("day", "hour")


@dataclass(frozen=True)
class TableInfo:
    """What the catalog knows of one table."""

    name: str
    description: str
    owner: str
    source: str
    schema: pa.Schema
    partition_by: list[str]
    num_rows: int
    size_bytes: int
    num_files: int
    version: int
    last_commit: datetime | None
    uri: str
    #: columns holding personal data (masked for served readers without the pii grant)
    pii: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "description": self.description,
            "owner": self.owner,
            "source": self.source,
            "schema": [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in self.schema],
            "partition_by": self.partition_by,
            "num_rows": self.num_rows,
            "size_bytes": self.size_bytes,
            "num_files": self.num_files,
            "version": self.version,
            "last_commit": self.last_commit.isoformat() if self.last_commit else None,
            "uri": self.uri,
            "pii": list(self.pii),
        }


def _names(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def validate_name(name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(f"table name {name!r}: expected namespace.table in lower_snake_case")
    return name


# Streaming pipelines and model watchers commit every few seconds, and every reader (each query)
# replays the log since the last checkpoint: with Delta's default of one per 100 commits that replay
# dominated small queries on busy tables. A checkpoint every 10 commits bounds it.
CHECKPOINT_INTERVAL = 10
#: a writer whose commits paused this long checkpoints the tables it committed to at their latest
#: version (ADR 0057): before a reader pins the table as quiet (``shoal.query.snapshots.QUIET_S``)
QUIET_CHECKPOINT_S = 2.0
#: the Delta properties of every table shoal creates (change data feed for the models' incremental
#: reads; frequent checkpoints), whichever path creates it
TABLE_CONFIGURATION = {
    "delta.enableChangeDataFeed": "true",
    "delta.checkpointInterval": str(CHECKPOINT_INTERVAL),
}


def _check_sources(
    name: str, schema: pa.Schema, partition_by: Sequence[str], sources: Mapping[str, tuple[str, str]]
) -> dict[str, dict[str, str]]:
    out = {}
    for col, (src, transform) in sources.items():
        if col not in partition_by:
            raise ConfigError(
                f"table {name}: partition source given for {col!r}, which is not a partition column"
            )
        if src not in schema.names:
            raise ConfigError(f"table {name}: partition column {col!r} comes from {src!r}, not in the schema")
        if transform not in PARTITION_TRANSFORMS:
            raise ConfigError(
                f"table {name}: partition column {col!r}: transform {transform!r} is not one of "
                + ", ".join(PARTITION_TRANSFORMS)
            )
        out[col] = {"from": src, "transform": transform}
    return out


def _check_derived(
    name: str, schema: pa.Schema, partition_by: Sequence[str], derived: Mapping[str, tuple[str, str]]
) -> dict[str, dict[str, str]]:
    out = {}
    for col, (src, transform) in derived.items():
        if col in partition_by:
            raise ConfigError(
                f"table {name}: derived column {col!r} is a partition column (declare it there)"
            )
        for what in (col, src):
            if what not in schema.names:
                raise ConfigError(f"table {name}: derived column {col!r}: {what!r} is not in the schema")
        if transform not in DERIVED_TRANSFORMS:
            raise ConfigError(
                f"table {name}: derived column {col!r}: transform {transform!r} is not one of "
                + ", ".join(DERIVED_TRANSFORMS)
            )
        out[col] = {"from": src, "transform": transform}
    return out


def _declared(side: Mapping[str, object], key: str, transforms: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Column -> (source, transform) of a sidecar's ``key``, skipping what this version cannot read."""
    declared = side.get(key)
    out: dict[str, tuple[str, str]] = {}
    if isinstance(declared, dict):
        for col, spec in declared.items():
            known = isinstance(spec, dict) and spec.get("transform") in transforms
            if known and spec.get("from"):
                out[str(col)] = (str(spec["from"]), str(spec["transform"]))
    return out


class Lake:
    """All tables under one root (a local directory or ``s3://bucket/prefix``)."""

    def __init__(self, root: str, storage_options: Mapping[str, str] | None = None) -> None:
        self.location = LakeLocation.parse(root, storage_options)

    @property
    def root(self) -> str:
        return self.location.root

    def __repr__(self) -> str:
        return f"Lake({self.root!r})"

    # -- tables --------------------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        ns, tbl = validate_name(name).split(".", 1)
        with translate_errors(f"lake {self.root}"):
            return bool(
                DeltaTable.is_deltatable(
                    self.location.table_uri(ns, tbl),
                    storage_options=dict(self.location.storage_options) or None,
                )
            )

    def create_table(
        self,
        name: str,
        schema: pa.Schema,
        *,
        partition_by: Sequence[str] = (),
        description: str = "",
        owner: str = "",
        source: str = "",
        pii: Sequence[str] = (),
        partition_sources: Mapping[str, tuple[str, str]] | None = None,
        derived_columns: Mapping[str, tuple[str, str]] | None = None,
        exist_ok: bool = True,
    ) -> Table:
        """Create an empty table (with change data feed on, for incremental models).

        ``partition_sources``: partition column -> (source column, transform), a promise by every
        writer that each row's partition value is ``transform(source)`` (ingest derives them so).
        Queries use it to prune partitions by a filter on the source column (query/partition_bounds.py).
        ``derived_columns``: the same promise for plain columns (``event_hour`` = hour of
        ``occurred_at``, NULL where it is NULL): queries read them instead of truncating the source
        (query/partition_keys.py, ADR 0047). Only a new table takes it: a column added to an
        existing table has NULLs in its older rows, which would break the promise.
        """
        validate_name(name)
        if self.exists(name):
            if not exist_ok:
                raise TableExists(f"table {name} already exists")
            return Table(name, self.location)
        missing = [c for c in partition_by if c not in schema.names]
        if missing:
            raise ConfigError(f"table {name}: partition column(s) {missing} not in the schema")
        unknown = [c for c in pii if c not in schema.names]
        if unknown:
            raise ConfigError(f"table {name}: personal-data column(s) {unknown} not in the schema")
        sources = _check_sources(name, schema, partition_by, partition_sources or {})
        derived = _check_derived(name, schema, partition_by, derived_columns or {})
        self.location.check_writable()
        table = Table(name, self.location)
        with translate_errors(f"create {name}"):
            # The sidecar goes first: a table only becomes visible once its Delta log exists.
            self.location.write_json(
                f"{table.namespace}/{table.table_name}/{SIDECAR}",
                {
                    "description": description,
                    "owner": owner,
                    "source": source,
                    "pii": list(pii),
                    **({"partition_sources": sources} if sources else {}),
                    **({"derived_columns": derived} if derived else {}),
                },
            )
            DeltaTable.create(
                table.uri,
                schema=schema,
                mode="ignore",
                partition_by=list(partition_by) or None,
                name=name,
                description=description or None,
                configuration=dict(TABLE_CONFIGURATION),
                storage_options=dict(self.location.storage_options) or None,
            )
        return table

    def table(self, name: str) -> Table:
        """The table called ``name``; NotFoundError naming close matches when absent."""
        validate_name(name)
        if not self.exists(name):
            raise NotFoundError(self.not_found_message(name))
        return Table(name, self.location)

    def find(self, name: str) -> Table | None:
        """The table called ``name``, or None (one existence check, no close-match search)."""
        return Table(name, self.location) if self.exists(name) else None

    def not_found_message(self, name: str) -> str:
        names = self.table_names()
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return f"no table {name} in lake {self.root}{hint}"

    def table_names(self) -> list[str]:
        names = []
        for ns in self.location.list_dirs():
            if ns.startswith((".", "_")):
                continue
            for tbl in self.location.list_dirs(ns):
                name = f"{ns}.{tbl}"
                if _NAME.match(name) and self.exists(name):
                    names.append(name)
        return names

    def pii_columns(self, name: str) -> list[str]:
        """The columns of ``name`` the catalog marks as personal data (e-mail, name, IP...)."""
        ns, tbl = validate_name(name).split(".", 1)
        side = self.location.read_json(f"{ns}/{tbl}/{SIDECAR}") or {}
        return _names(side.get("pii"))

    def partition_sources(self, name: str) -> dict[str, tuple[str, str]]:
        """Partition column -> (source column, transform) as declared when ``name`` was created."""
        return self.column_sources(name)[0]

    def derived_columns(self, name: str) -> dict[str, tuple[str, str]]:
        """Plain column -> (source column, transform) as declared when ``name`` was created."""
        return self.column_sources(name)[1]

    def column_sources(self, name: str) -> tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]]]:
        """``(partition_sources(name), derived_columns(name))`` from one read of the sidecar."""
        ns, tbl = validate_name(name).split(".", 1)
        side = self.location.read_json(f"{ns}/{tbl}/{SIDECAR}") or {}
        return (
            _declared(side, "partition_sources", PARTITION_TRANSFORMS),
            _declared(side, "derived_columns", DERIVED_TRANSFORMS),
        )

    def mark_pii(self, name: str, columns: Sequence[str]) -> None:
        """Mark ``columns`` of an existing table as personal data (replaces the previous marking)."""
        table = self.table(name)
        names = pa.schema(table.delta().schema().to_arrow()).names
        unknown = [c for c in columns if c not in names]
        if unknown:
            raise ConfigError(f"table {name}: personal-data column(s) {unknown} not in the schema")
        path = f"{table.namespace}/{table.table_name}/{SIDECAR}"
        side = self.location.read_json(path) or {}
        self.location.write_json(path, {**side, "pii": list(dict.fromkeys(columns))})

    def tables(self) -> list[Table]:
        return [Table(n, self.location) for n in self.table_names()]

    def describe(self, name: str) -> TableInfo:
        return self._describe(self.table(name))

    def _describe(self, table: Table) -> TableInfo:
        name = table.name
        dt = table.delta()
        meta = dt.metadata()
        side = self.location.read_json(f"{table.namespace}/{table.table_name}/{SIDECAR}") or {}
        with translate_errors(f"describe {name}"):
            actions = pa.table(dt.get_add_actions(flatten=True))
            history = dt.history(1)
        last = history[0].get("timestamp") if history else None
        return TableInfo(
            name=name,
            description=str(side.get("description") or meta.description or ""),
            owner=str(side.get("owner") or ""),
            source=str(side.get("source") or ""),
            schema=pa.schema(dt.schema().to_arrow()),
            partition_by=list(meta.partition_columns),
            num_rows=int(pa.compute.sum(actions["num_records"]).as_py() or 0) if actions.num_rows else 0,
            size_bytes=int(pa.compute.sum(actions["size_bytes"]).as_py() or 0) if actions.num_rows else 0,
            num_files=actions.num_rows,
            version=int(dt.version()),
            last_commit=datetime.fromtimestamp(last / 1000, tz=UTC) if last else None,
            uri=table.uri,
            pii=tuple(_names(side.get("pii"))),
        )

    def list_tables(self) -> list[TableInfo]:
        # table_names() already checked each one exists: no second check per table
        return [self._describe(Table(n, self.location)) for n in self.table_names()]
