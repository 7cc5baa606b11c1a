"""The ingest loop: record source (Kafka) → decode → Arrow → transform → buffer → exactly-once commit.

The loop consumes and checks offsets on its own thread; a consumed batch of at least
``PIPELINE_MIN_RECORDS`` records is decoded and built into Arrow on a decode thread while the loop
consumes the next one (ADR 0048: numpy and Arrow kernels and librdkafka's waits run without the GIL,
so the two overlap). Batches land in the buffer in the order they were consumed; a smaller batch (a
live stream rather than a backlog) is decoded before the next poll, so freshness does not change.
A full buffer is committed (Parquet write + Delta commit, most of it in delta-rs without the GIL)
on a third thread while the loop goes on consuming the next one. At most one commit is in flight,
commits land in order, and anything that needs the lake's progress (an assignment, a revocation, a
loss, the end) first waits for it; the Kafka offset commit and the counters follow on the loop's
thread. A flush (and a loss) first lands the batch being decoded. Memory is bounded by two flush
units plus librdkafka's pre-fetch queue (capped in :data:`shoal.sources.kafka.DEFAULT_CONSUMER_CONFIG`).

``until_drained``: librdkafka emits a partition-EOF event when a fetch reaches the partition's end.
The worker stops once every assigned partition has reported EOF since its last message *and* no
message arrived for ``drain_idle_s`` seconds. High watermarks are not trusted (tansu reports them
wrong); a longer idle period (``drain_timeout_s``) without any EOF also counts as drained.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa

from shoal.decode import build_decoder
from shoal.ingest.buffer import DeadRecord, FlushBuffer, TopicPartition
from shoal.ingest.errors import KafkaFatalError
from shoal.ingest.follow import CommitFollower, models_to_refresh
from shoal.ingest.heap import ingest_heap
from shoal.ingest.jsonlog import get_logger
from shoal.ingest.metrics import IngestMetrics
from shoal.ingest.sink import CommitResult, LakeSink, Positions
from shoal.ingest.source import EARLIEST, LATEST, Record, RecordSource, SourceFactory, kafka_source
from shoal.ingest.spec import PipelineSpec, load_pipeline
from shoal.ingest.transform import BatchTransform, FailedRow
from shoal.lake.catalog import QUIET_CHECKPOINT_S

if TYPE_CHECKING:
    from shoal.lake import Lake
    from shoal.models import Model

META_FIELDS = [
    pa.field("_kafka_topic", pa.string()),
    pa.field("_kafka_partition", pa.int32()),
    pa.field("_kafka_offset", pa.int64()),
    pa.field("_kafka_timestamp", pa.timestamp("ms", tz="UTC")),
    pa.field("_kafka_key", pa.binary()),
    pa.field("_ingested_at", pa.timestamp("us", tz="UTC")),
]


#: consumed batches of at least this many records are decoded on the decode thread while the next
#: batch is consumed; smaller ones (a live stream, not a backlog) are decoded before the next poll
PIPELINE_MIN_RECORDS = 1000


@dataclass(frozen=True, slots=True)
class _Built:
    """One consumed batch, decoded and built: what the buffer takes."""

    batch: pa.RecordBatch | None
    ranges: dict[TopicPartition, tuple[int, int]]
    dead: list[DeadRecord]
    records: int


class ProjectLike(Protocol):
    @property
    def dir(self) -> Path: ...
    @property
    def lake(self) -> Lake: ...
    def pipeline_file(self, name: str) -> Path: ...
    @property
    def models(self) -> list[Model]: ...


@dataclass(frozen=True)
class RunStats:
    """What one run of a worker did."""

    pipeline: str
    consumed: int
    committed_rows: int
    dead_lettered: int
    skipped: int
    flushes: int
    duration_s: float
    stopped: str  # drained | stop_event | signal
    metrics_port: int | None = None
    #: seconds per stage: consume, decode, build (Arrow + transform + partition columns), write_commit
    #: (Parquet write + Delta commit of both tables), kafka_commit
    timings: dict[str, float] = field(default_factory=dict)
    #: seconds from the first record consumed to the end of the last commit (excludes group join and
    #: the final drain wait)
    active_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_pipeline(project: ProjectLike, name_or_spec: str | Path | PipelineSpec) -> PipelineSpec:
    if isinstance(name_or_spec, PipelineSpec):
        return name_or_spec
    path = project.pipeline_file(str(name_or_spec))
    return load_pipeline(path, project.dir)


def run_pipeline(
    project: ProjectLike,
    name_or_spec: str | Path | PipelineSpec,
    *,
    until_drained: bool = False,
    stop_event: threading.Event | None = None,
    metrics_port: int | None = None,
    extra_client_config: Mapping[str, Any] | None = None,
    drain_idle_s: float = 2.0,
    drain_timeout_s: float = 30.0,
    source: SourceFactory = kafka_source,
) -> RunStats:
    """Run one worker of a pipeline until drained, ``stop_event`` is set, or SIGTERM/SIGINT.

    Raises :class:`PipelineStopped` (Terminal) on an incompatible schema change or similar: nothing
    of the failing batch is committed and offsets are untouched.
    """
    spec = resolve_pipeline(project, name_or_spec)
    refresh = models_to_refresh(spec.table, spec.refresh, project.models) if spec.refresh else []
    worker = IngestWorker(
        project.lake,
        spec,
        refresh_models=refresh,
        stop_event=stop_event,
        extra_client_config=extra_client_config,
        drain_idle_s=drain_idle_s,
        drain_timeout_s=drain_timeout_s,
        source=source,
    )
    return worker.run(until_drained=until_drained, metrics_port=metrics_port)


#: the records to ingest of one consumed batch, their offsets, partitions and topics as columns,
#: and each partition's [first, last + 1) offsets
Accepted = tuple[Sequence[Record], np.ndarray, np.ndarray, pa.Array, dict[TopicPartition, tuple[int, int]]]


def accept_records(
    msgs: Sequence[Record], expected: dict[TopicPartition, int], eof: set[TopicPartition]
) -> Accepted:
    """The records of assigned partitions (keys of ``expected``) at or past the next expected
    offset, each offset once (a re-fetch after a seek repeats some); advances ``expected`` and
    clears ``eof`` for the partitions that had one.

    Column-wise (one pass per attribute, the checks in numpy): a Python loop doing the same per
    record cost twice the CPU (bench/bench_consume_loop.py)."""
    n_all = len(msgs)
    topic_of = [m.topic() for m in msgs]
    parts = np.fromiter((m.partition() for m in msgs), np.int64, n_all)
    offsets = np.fromiter((m.offset() for m in msgs), np.int64, n_all)
    names = sorted({str(t) for t in topic_of})
    keep = np.zeros(n_all, bool)
    ranges: dict[TopicPartition, tuple[int, int]] = {}
    for t in names:
        in_topic = None if len(names) == 1 else np.fromiter((x == t for x in topic_of), bool, n_all)
        for p in np.unique(parts if in_topic is None else parts[in_topic]).tolist():
            sel = np.flatnonzero(parts == p if in_topic is None else in_topic & (parts == p))
            tp = (t, int(p))
            exp = expected.get(tp)
            if exp is None:  # not ours (anymore)
                continue
            o = offsets[sel]
            # kept: past the expected offset and past every earlier offset of the partition here
            ok = o > np.maximum.accumulate(np.concatenate(([exp - 1], o[:-1])))
            if ok.any():
                first, last = int(o[ok][0]), int(o[ok][-1])
                ranges[tp] = (first, last + 1)
                expected[tp] = last + 1
                eof.discard(tp)
                keep[sel[ok]] = True
    idx = np.flatnonzero(keep)
    if len(idx) == n_all:
        kept: Sequence[Record] = msgs
        topic_list = topic_of
    else:
        kept = [msgs[i] for i in idx.tolist()]
        topic_list = [topic_of[i] for i in idx.tolist()]
        offsets, parts = offsets[idx], parts[idx]
    if len(names) == 1:
        topics = pa.repeat(pa.scalar(names[0], pa.string()), len(idx))
    else:
        topics = pa.array(topic_list, pa.string())
    return kept, offsets, parts, topics, ranges


class IngestWorker:
    """One consumer-group member of a pipeline (the :class:`SourceEvents` of its record source)."""

    def __init__(
        self,
        lake: Lake,
        spec: PipelineSpec,
        *,
        refresh_models: Sequence[Model] = (),
        stop_event: threading.Event | None = None,
        extra_client_config: Mapping[str, Any] | None = None,
        drain_idle_s: float = 2.0,
        drain_timeout_s: float = 30.0,
        source: SourceFactory = kafka_source,
    ) -> None:
        self.spec = spec
        self.lake = lake
        self.log = get_logger()
        self.stop_event = stop_event or threading.Event()
        self.metrics = IngestMetrics(spec.name)
        self.decoder = build_decoder(spec.decode)
        self.sink = LakeSink(lake, spec, self.metrics)
        self.buffer = FlushBuffer(spec.flush)
        self.extra_client_config = dict(extra_client_config or {})
        self.drain_idle_s = drain_idle_s
        self.drain_timeout_s = max(drain_timeout_s, drain_idle_s)
        self._expected: dict[TopicPartition, int] = {}  # next offset accepted per assigned partition
        self._eof: set[TopicPartition] = set()
        self._ends: set[TopicPartition] = set()  # ends reported by the poll in progress (on_end)
        self._failed = False
        self._signalled = False
        # start of the current run of consume() calls that returned no record (processing time
        # does not count as quiet: a slow flush must not look like the end of the backlog)
        self._quiet_since: float | None = None
        self._first_record: float | None = None
        self._last_commit: float | None = None
        self.transform = BatchTransform(spec)
        self._consumed = self._rows = self._dead = self._skipped = self._flushes = 0
        self._open_source = source
        self._source: RecordSource | None = None
        # the commit in flight on the committer thread: (its result and end time, flush reason)
        self._committer: ThreadPoolExecutor | None = None
        self._inflight: tuple[Future[tuple[CommitResult, float]], str] | None = None
        # the batch being decoded on the decode thread: (its build, its record count)
        self._decode_pool: ThreadPoolExecutor | None = None
        self._decoding: tuple[Future[_Built], int] | None = None
        self._refresh_models = list(refresh_models)
        self.follower: CommitFollower | None = None

    # -- source events -----------------------------------------------------------------------------
    def on_assign(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        self._settle(wait=True)  # the progress read next must include the commit in flight
        positions = self.sink.positions(tps)
        starts = {tp: self._start_offset(pos) for tp, pos in positions.items()}
        for tp, start in starts.items():
            self._expected[tp] = max(start, 0)
            self._eof.discard(tp)
            self._ends.discard(tp)
        self._quiet_since = None
        self.metrics.assigned.labels(self.spec.name).set(len(self._expected))
        self.log.info(
            "partitions assigned",
            extra={
                "pipeline": self.spec.name,
                "start_offsets": {f"{t}:{p}": o for (t, p), o in starts.items()},
            },
        )
        return starts

    def _start_offset(self, pos: Positions) -> int:
        if pos.data is not None:
            return pos.data
        if pos.dead is not None:
            # Dead letters were committed but no rows yet: replay from the start; the commit filter
            # skips the dead letters already there.
            return EARLIEST
        return EARLIEST if self.spec.start_from == "earliest" else LATEST

    def on_revoke(self, tps: list[TopicPartition]) -> None:
        # Commit what was buffered (and wait for it) before giving the partitions up; the next owner
        # starts where the table says. After a failure nothing is committed (offsets stay in the table).
        if not self._failed:
            self._flush("revoke")
        else:
            self.buffer.drop_partitions(tps)
        self._forget(tps)
        self.log.info(
            "partitions revoked",
            extra={"pipeline": self.spec.name, "partitions": [f"{t}:{p}" for t, p in tps]},
        )

    def on_lost(self, tps: list[TopicPartition]) -> None:
        # Another member may own them already: committing could only be filtered away, so drop
        # (a commit already in flight is built on the snapshot it read: a conflict if they moved on).
        if not self._failed:
            self._land(wait=True)  # the batch being decoded may hold records of them
        dropped = self.buffer.drop_partitions(tps)
        if not self._failed:
            self._settle(wait=True)
        self._forget(tps)
        self.log.warning("partitions lost", extra={"pipeline": self.spec.name, "dropped_rows": dropped})

    def on_end(self, tp: TopicPartition) -> None:
        # taken once the batch this poll returns is accepted: accepting a partition's records
        # clears its end, and the end reported with its last records must outlive them
        self._ends.add(tp)

    def on_error(self, code: str, detail: str) -> None:
        self.metrics.kafka_errors.labels(self.spec.name, code).inc()
        self.log.warning("kafka error", extra={"pipeline": self.spec.name, "code": code, "detail": detail})

    def _forget(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            self._expected.pop(tp, None)
            self._eof.discard(tp)
            self._ends.discard(tp)
        self.metrics.assigned.labels(self.spec.name).set(len(self._expected))

    # -- main loop ---------------------------------------------------------------------------------
    def run(self, *, until_drained: bool = False, metrics_port: int | None = None) -> RunStats:
        started = time.monotonic()
        port = self.metrics.serve(metrics_port) if metrics_port is not None else None
        restore = self._install_signals()
        stopped = "stop_event"
        self.log.info(
            "pipeline starting",
            extra={
                "pipeline": self.spec.name,
                "topics": self.spec.subscription,
                "table": self.spec.table,
                "group_id": self.spec.group,
                "metrics_port": port,
            },
        )
        self._source = source = self._open_source(
            self.spec, self.extra_client_config, self, self.metrics.on_stats, self.log
        )
        if self._refresh_models:
            self.follower = CommitFollower(
                self.lake,
                self._refresh_models,
                pipeline=self.spec.name,
                table=self.spec.table,
                metrics=self.metrics,
                log=self.log,
            )
        try:
            max_rows = self.spec.flush.max_rows
            with ingest_heap(self.spec.consume_batch):  # fewer, shorter GC passes (heap.py)
                while not self.stop_event.is_set():
                    # the batch being decoded lands once done, or now if it completes the flush unit
                    decoding = self._decoding[1] if self._decoding is not None else 0
                    self._land(wait=self.buffer.rows + decoding >= max_rows)
                    reason = self.buffer.due()
                    if reason:
                        self._flush(reason, wait=False)  # committed while the next batches are consumed
                    decoding = self._decoding[1] if self._decoding is not None else 0
                    # (not shortened while a batch is decoding: consume() returns as soon as it has a
                    # batch, and a shorter wait made batches smaller when fetching was the bottleneck)
                    timeout = min(0.5, max(0.01, self.buffer.seconds_until_due()))
                    # Never take more than the flush needs: keeps each flush at most max_rows.
                    room = max(1, max_rows - self.buffer.rows - decoding)
                    t0 = time.perf_counter()
                    msgs = source.poll(min(self.spec.consume_batch, room), timeout)
                    if msgs:
                        self.metrics.consume_s.labels(self.spec.name).observe(time.perf_counter() - t0)
                    if source.fatal_error is not None:
                        raise KafkaFatalError(
                            f"pipeline {self.spec.name}: kafka: {source.fatal_error}", pipeline=self.spec.name
                        )
                    self._settle(wait=False)
                    accepted = self._ingest(msgs) if msgs else 0
                    self._eof.update(tp for tp in self._ends if tp in self._expected)
                    self._ends.clear()
                    if accepted:
                        self._quiet_since = None
                    else:
                        self._land(wait=True)
                        if self._quiet_since is None:
                            self._quiet_since = time.monotonic()
                        elif self._commits_paused():
                            self.sink.checkpoint_quiet()
                    if until_drained and self._drained():
                        stopped = "drained"
                        break
            if self._signalled:
                stopped = "signal"
            self._flush("shutdown")
            self.sink.checkpoint_quiet(wait=True)  # a stopped worker leaves its tables quiet
        except BaseException:
            self._failed = True
            raise
        finally:
            try:
                self._abandon_inflight()
                source.close()  # eager protocol: triggers on_revoke (no-op: buffer is empty or failed)
                if self.follower is not None:
                    self.follower.close()  # the models catch up with the last commit first
            finally:
                if self._decode_pool is not None:
                    self._decode_pool.shutdown(wait=True)
                if self._committer is not None:
                    self._committer.shutdown(wait=True)
                self.sink.wait_background(timeout=60)
                self.metrics.stop()
                restore()
                self.transform.close()
        stats = RunStats(
            pipeline=self.spec.name,
            consumed=self._consumed,
            committed_rows=self._rows,
            dead_lettered=self._dead,
            skipped=self._skipped,
            flushes=self._flushes,
            duration_s=round(time.monotonic() - started, 3),
            stopped=stopped,
            metrics_port=port,
            timings=self.metrics.timings(),
            active_s=round((self._last_commit or 0) - (self._first_record or 0), 3)
            if self._first_record
            else 0.0,
        )
        self.log.info("pipeline stopped", extra=stats.as_dict())
        return stats

    def _commits_paused(self) -> bool:
        """Nothing consumed, buffered or committing, and no commit for ``QUIET_CHECKPOINT_S``: the
        moment for a checkpoint of what was committed (ADR 0057)."""
        if self._inflight is not None or not self.buffer.empty or self._quiet_since is None:
            return False
        since = max(self._quiet_since, self._last_commit or 0.0)
        return time.monotonic() - since >= QUIET_CHECKPOINT_S

    def _install_signals(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum: int, _frame: FrameType | None) -> None:
            self._signalled = True
            self.stop_event.set()

        old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for s, h in old.items():
                signal.signal(s, h)

        return restore

    def _drained(self) -> bool:
        idle = 0.0 if self._quiet_since is None else time.monotonic() - self._quiet_since
        assigned = set(self._expected)
        if assigned and assigned <= self._eof and idle >= self.drain_idle_s:
            drained = True
        else:
            drained = idle >= self.drain_timeout_s
        if drained:
            self._flush("drained")  # do not wait for max_latency_s at the end of the backlog
        return drained

    # -- one consumed batch --------------------------------------------------------------------------
    def _ingest(self, msgs: Sequence[Record]) -> int:
        """Check the offsets of one consumed batch and hand it to the decode thread (the batch
        decoded before it lands in the buffer first); returns how many records it held."""
        kept, offsets, parts, topics, ranges = accept_records(msgs, self._expected, self._eof)
        skipped = len(msgs) - len(kept)
        self._skipped += skipped
        if skipped:
            self.metrics.skipped.labels(self.spec.name).inc(skipped)
        n = len(kept)
        if not n:
            return skipped
        if self._first_record is None:
            self._first_record = time.monotonic()
        self._consumed += n
        self.metrics.consumed.labels(self.spec.name).inc(n)
        self._land(wait=True)  # batches land in the order they were consumed
        if self._decode_pool is None:
            self._decode_pool = ThreadPoolExecutor(1, thread_name_prefix=f"decode-{self.spec.name}")
        fut = self._decode_pool.submit(self._build, kept, offsets, parts, topics, ranges)
        self._decoding = (fut, n)
        if n < PIPELINE_MIN_RECORDS:
            self._land(wait=True)
        return n + skipped

    def _land(self, *, wait: bool) -> None:
        """Add the batch being decoded to the buffer once it is built (``wait``: wait for it).
        Its error (e.g. an incompatible transform result) is raised here."""
        if self._decoding is None or (not wait and not self._decoding[0].done()):
            return
        fut = self._decoding[0]
        self._decoding = None
        built = fut.result()
        self.buffer.add(built.batch, built.ranges, built.dead, records=built.records)
        self.metrics.buffered.labels(self.spec.name).set(self.buffer.rows)

    def _build(
        self,
        kept: Sequence[Record],
        offsets: np.ndarray,
        parts: np.ndarray,
        topics: pa.Array,
        ranges: dict[TopicPartition, tuple[int, int]],
    ) -> _Built:
        """Decode accepted records and build their rows (on the decode thread)."""
        n = len(kept)
        values = [m.value() for m in kept]
        keys = [m.key() for m in kept]
        stamps = np.fromiter((m.timestamp()[1] for m in kept), np.int64, n)

        t0 = time.perf_counter()
        res = self.decoder.decode(values)
        t1 = time.perf_counter()
        self.metrics.decode_s.labels(self.spec.name).observe(t1 - t0)
        dead = [self._dead_record(kept[f.index], f.error_class, f.message) for f in res.failures]

        meta = [
            topics,
            pa.array(parts, pa.int32()),
            pa.array(offsets, pa.int64()),
            pa.array(stamps, mask=stamps < 0).cast(pa.timestamp("ms", tz="UTC")),
            pa.array(keys, pa.binary()),
            pa.array(np.full(n, int(time.time() * 1_000_000), dtype=np.int64)).cast(
                pa.timestamp("us", tz="UTC")
            ),
        ]
        if len(res.indices) != n:
            idx = pa.array(res.indices, pa.int64())
            meta = [col.take(idx) for col in meta]
        decoded = res.batch
        table = pa.Table.from_arrays(
            [*decoded.columns, *meta], schema=pa.schema([*decoded.schema, *META_FIELDS])
        )
        table, failed = self.transform.apply(table)
        dead.extend(self._dead_from_rows(kept, failed))
        self.metrics.build_s.labels(self.spec.name).observe(time.perf_counter() - t1)
        batch = table.combine_chunks().to_batches()
        return _Built(batch[0] if batch else None, ranges, dead, n)

    def _dead_record(self, m: Record, error_class: str, message: str) -> DeadRecord:
        ts = m.timestamp()[1]
        raw_headers: Any = m.headers() or []
        headers = tuple((str(k), v) for k, v in raw_headers)
        return DeadRecord(
            topic=m.topic(),  # type: ignore[arg-type]
            partition=m.partition(),  # type: ignore[arg-type]
            offset=m.offset(),  # type: ignore[arg-type]
            timestamp_ms=ts if ts >= 0 else None,
            key=m.key(),
            value=m.value(),
            headers=headers,
            error_class=error_class,
            error_message=message,
        )

    def _dead_from_rows(self, kept: Sequence[Record], rows: list[FailedRow]) -> list[DeadRecord]:
        if not rows:
            return []
        where = {(m.topic(), m.partition(), m.offset()): m for m in kept}
        return [self._dead_record(where[(t, p, o)], cls, msg) for t, p, o, cls, msg in rows]

    # -- flush -------------------------------------------------------------------------------------------
    def _flush(self, reason: str, *, wait: bool = True) -> None:
        """Commit the buffer on the committer thread, after the commit in flight (if any) landed;
        ``wait``: and wait for it too."""
        self._land(wait=True)  # everything consumed so far is in the unit
        if not self.buffer.empty:
            self._settle(wait=True)  # one commit in flight at a time: they land in order
            unit = self.buffer.take(reason)

            def commit() -> tuple[CommitResult, float]:
                return self.sink.commit(unit), time.monotonic()

            if self._committer is None:
                self._committer = ThreadPoolExecutor(1, thread_name_prefix=f"commit-{self.spec.name}")
            self._inflight = (self._committer.submit(commit), reason)
        if wait:
            self._settle(wait=True)

    def _abandon_inflight(self) -> None:
        """On the way out after a failure: let a decode and a commit in flight end (or fail) before
        returning; nothing of the batch being decoded is buffered."""
        held = (self._decoding, self._inflight)
        pending: list[Future[Any]] = [h[0] for h in held if h is not None]
        self._decoding = self._inflight = None
        for fut in pending:  # the decode first, then the commit, as they were started
            try:
                fut.result()
            except BaseException:  # the run is already failing with the first error
                self._failed = True

    def _settle(self, *, wait: bool) -> None:
        """Book the commit in flight once it has landed (``wait``: wait for it): counters, the
        Kafka offset commit, the log line. Its error, if it failed, is raised here."""
        if self._inflight is None or (not wait and not self._inflight[0].done()):
            return
        fut, reason = self._inflight
        self._inflight = None
        try:
            result, done_at = fut.result()
        except BaseException:
            self._failed = True
            raise
        self._last_commit = done_at
        self._rows += result.rows
        self._dead += result.dead
        self._skipped += result.skipped
        self._flushes += 1
        name = self.spec.name
        self.metrics.committed.labels(name).inc(result.rows)
        self.metrics.dead.labels(name).inc(result.dead)
        if result.skipped:
            self.metrics.skipped.labels(name).inc(result.skipped)
        self.metrics.batch_rows.labels(name).observe(result.rows)
        self.metrics.buffered.labels(name).set(self.buffer.rows)  # consumed since the commit began
        if self.follower is not None and result.data_version is not None and result.data is not None:
            self.follower.committed(result.read_version, result.data_version, result.data)
        if self._source is not None:
            t0 = time.perf_counter()
            self._source.commit(result.offsets)
            self.metrics.kafka_commit_s.labels(name).observe(time.perf_counter() - t0)
        self.log.info(
            "flushed",
            extra={
                "pipeline": name,
                "reason": reason,
                "rows": result.rows,
                "dead_letters": result.dead,
                "skipped": result.skipped,
                "version": result.data_version,
                "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            },
        )
