"""The in-memory buffer between consuming and committing, and the flush policy.

Rows are kept as Arrow chunks (already decoded and enriched) plus, per (topic, partition), the
offset range consumed since the last flush. The offsets — not the rows — are what a flush commits
as Delta ``txn`` versions: a partition's range also covers records that were dead-lettered or
filtered out by ``transform_sql``, so those advance too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from shoal.ingest.spec import FlushPolicy

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class DeadRecord:
    """A record that could not become a table row, with everything needed to replay it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    error_class: str
    error_message: str


@dataclass(frozen=True)
class FlushUnit:
    """What one flush commits: rows, dead records and each partition's offset range."""

    data: pa.Table | None
    dead: tuple[DeadRecord, ...]
    first_offsets: Mapping[TopicPartition, int]
    next_offsets: Mapping[TopicPartition, int]
    records: int
    reason: str

    @property
    def rows(self) -> int:
        return 0 if self.data is None else self.data.num_rows


@dataclass
class _Range:
    first: int
    next: int


@dataclass
class FlushBuffer:
    """Accumulates batches until :meth:`due` says the policy wants a flush."""

    policy: FlushPolicy
    clock: Callable[[], float] = time.monotonic
    _chunks: list[pa.RecordBatch] = field(default_factory=list)
    _dead: list[DeadRecord] = field(default_factory=list)
    _ranges: dict[TopicPartition, _Range] = field(default_factory=dict)
    _rows: int = 0
    _bytes: int = 0
    _records: int = 0
    _since: float | None = None

    # -- filling ---------------------------------------------------------------------------------
    def add(
        self,
        batch: pa.RecordBatch | None,
        offsets: Mapping[TopicPartition, tuple[int, int]],
        dead: Iterable[DeadRecord] = (),
        records: int = 0,
    ) -> None:
        """Add one consumed batch: its rows, its dead records and the (first, next) offset per partition."""
        if not offsets:
            return
        if self._since is None:
            self._since = self.clock()
        if batch is not None and batch.num_rows:
            self._chunks.append(batch)
            self._rows += batch.num_rows
            self._bytes += batch.nbytes
        for d in dead:
            self._dead.append(d)
            self._bytes += len(d.value or b"") + len(d.key or b"") + 200
        for tp, (first, nxt) in offsets.items():
            r = self._ranges.get(tp)
            if r is None:
                self._ranges[tp] = _Range(first, nxt)
            else:
                r.first = min(r.first, first)
                r.next = max(r.next, nxt)
        self._records += records

    # -- policy ----------------------------------------------------------------------------------
    @property
    def rows(self) -> int:
        return self._rows

    @property
    def nbytes(self) -> int:
        return self._bytes

    @property
    def empty(self) -> bool:
        return not self._ranges

    def partitions(self) -> set[TopicPartition]:
        return set(self._ranges)

    def due(self) -> str | None:
        """The reason a flush is due now (``rows``, ``bytes``, ``latency``) or None."""
        if self._since is None:
            return None
        if self._rows + len(self._dead) >= self.policy.max_rows:
            return "rows"
        if self._bytes >= self.policy.max_bytes:
            return "bytes"
        if self.clock() - self._since >= self.policy.max_latency_s:
            return "latency"
        return None

    def seconds_until_due(self) -> float:
        """How long the consumer may block before the latency limit is reached."""
        if self._since is None:
            return self.policy.max_latency_s
        return max(0.0, self.policy.max_latency_s - (self.clock() - self._since))

    # -- draining ---------------------------------------------------------------------------------
    def take(self, reason: str) -> FlushUnit:
        """Hand over everything buffered and start empty (the caller commits or re-adds it)."""
        data = None
        if self._chunks:
            data = (
                pa.Table.from_batches(self._chunks) if _same_schema(self._chunks) else _concat(self._chunks)
            )
        unit = FlushUnit(
            data=data,
            dead=tuple(self._dead),
            first_offsets={tp: r.first for tp, r in self._ranges.items()},
            next_offsets={tp: r.next for tp, r in self._ranges.items()},
            records=self._records,
            reason=reason,
        )
        self.clear()
        return unit

    def clear(self) -> None:
        self._chunks = []
        self._dead = []
        self._ranges = {}
        self._rows = self._bytes = self._records = 0
        self._since = None

    def drop_partitions(self, tps: Iterable[TopicPartition]) -> int:
        """Forget what was buffered for ``tps`` (lost partitions); returns the rows dropped."""
        gone = set(tps) & set(self._ranges)
        if not gone:
            return 0
        for tp in gone:
            del self._ranges[tp]
        self._dead = [d for d in self._dead if (d.topic, d.partition) not in gone]
        kept: list[pa.RecordBatch] = []
        dropped = 0
        for chunk in self._chunks:
            mask = keep_mask(chunk, {tp: None for tp in gone})
            n = pc.sum(mask.cast(pa.int64())).as_py() or 0
            dropped += chunk.num_rows - n
            if n:
                kept.append(chunk.filter(mask))
        self._chunks = kept
        self._rows = sum(c.num_rows for c in kept)
        self._bytes = sum(c.nbytes for c in kept) + sum(len(d.value or b"") + 200 for d in self._dead)
        if not self._ranges:
            self.clear()
        return dropped


def keep_mask(
    data: pa.RecordBatch | pa.Table, below: Mapping[TopicPartition, int | None]
) -> pa.ChunkedArray | pa.Array:
    """True for rows to keep: a row of partition ``tp`` is dropped if its offset < ``below[tp]``.

    ``None`` as the bound drops every row of that partition.
    """
    topic = data.column("_kafka_topic")
    part = data.column("_kafka_partition")
    offset = data.column("_kafka_offset")
    drop = None
    for (t, p), bound in below.items():
        cond = pc.and_(pc.equal(topic, t), pc.equal(part, pa.scalar(p, pa.int32())))
        if bound is not None:
            cond = pc.and_(cond, pc.less(offset, pa.scalar(bound, pa.int64())))
        drop = cond if drop is None else pc.or_(drop, cond)
    if drop is None:
        return pa.array([True] * data.num_rows, pa.bool_())
    return pc.invert(drop)


def _same_schema(chunks: list[pa.RecordBatch]) -> bool:
    first = chunks[0].schema
    return all(c.schema.equals(first) for c in chunks[1:])


def _concat(chunks: list[pa.RecordBatch]) -> pa.Table:
    # Different schemas within one flush: a transform produced a null-typed column in one batch,
    # or the decoder was swapped. Permissive promotion unifies them (or raises on a real clash).
    return pa.concat_tables([pa.Table.from_batches([c]) for c in chunks], promote_options="permissive")
