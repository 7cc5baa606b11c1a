"""What a source hands the sync: table shapes, row changes grouped by transaction, positions."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

Converter = Callable[[Any], Any]


@dataclass(frozen=True)
class Column:
    """A source column: its name, exact lake type and how a driver's value becomes that type."""

    name: str
    type: pa.DataType
    source_type: str
    convert: Converter | None = None


@dataclass(frozen=True)
class SourceTable:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type, nullable=True) for c in self.columns])

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def int_key(self) -> bool:
        """One integer key column: snapshot chunks can resume after the last key (a txn int)."""
        return len(self.key) == 1 and pa.types.is_integer(self.column(self.key[0]).type)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_arrow(self, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
        """Rows (driver values by column name) as an Arrow table of the exact lake types."""
        arrays = []
        for c in self.columns:
            values = [r.get(c.name) for r in rows]
            if c.convert is not None:
                values = [None if v is None else c.convert(v) for v in values]
            arrays.append(pa.array(values, type=c.type))
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def conform(self, data: pa.Table) -> pa.Table:
        """A columnar reader's chunk in the exact lake types: cast where Arrow can, else each
        value through the column's converter (e.g. BIT bytes to an integer)."""
        arrays = []
        for c in self.columns:
            col = data.column(c.name)
            try:
                arrays.append(col.cast(c.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                values = col.to_pylist()
                if c.convert is not None:
                    values = [None if v is None else c.convert(v) for v in values]
                arrays.append(pa.chunked_array([pa.array(values, type=c.type)]))
        return pa.Table.from_arrays(arrays, schema=self.schema)


@dataclass
class Change:
    """One row change: an upsert carries the full new row, a delete at least the key; a
    truncate (no row) empties the table."""

    table: str
    op: Literal["upsert", "delete", "truncate"]
    row: dict[str, Any]
    #: a delete/update of a row whose key changed: the old key to delete first
    old_key: dict[str, Any] | None = None
    #: an insert: the key was not in the source table just before
    insert: bool = False


@dataclass
class Transaction:
    """The changes of one source transaction and the position right after its commit."""

    position: int
    changes: list[Change] = field(default_factory=list)
    #: its global transaction id, when the source has them: MariaDB (domain, server id, sequence)
    gtid: tuple[int, int, int] | None = None


@dataclass
class TableReport:
    table: str
    lake_table: str
    snapshot_rows: int = 0
    upserted: int = 0
    deleted: int = 0
    position: int | None = None


@dataclass
class SyncReport:
    database: str
    tables: dict[str, TableReport] = field(default_factory=dict)
    rounds: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "rounds": self.rounds,
            "tables": [vars(t) for t in self.tables.values()],
        }
