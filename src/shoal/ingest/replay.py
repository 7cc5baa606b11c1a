"""Dead letters inspected, and replayed into the main table with the pipeline's *current* spec.

``shoal dlq list|show|replay`` sit on this module. Replay re-decodes each letter's raw value with
the pipeline's decoder as it is now (a new descriptor) and runs its transform as it is now (a
corrected ``transform_sql``), then commits the rows to the main table exactly once (ADR 0026):

1. the keys of the pending letters are read from one snapshot of the dead-letter table, sorted
   (:data:`~shoal.ingest.dead_letter.LETTER_KEY`) and taken in batches, whose raw values are read
   from that same snapshot one batch at a time;
2. per batch, one snapshot ``S`` of the main table gives the replay's progress key
   (:func:`shoal.lake.progress.dead_letter_replay`) and the letters whose offsets the table already
   holds; those rows are dropped. The remaining rows are appended in one commit *built on S* that
   advances the key, so a second replay that committed in between is a conflict (the batch is
   checked again);
3. the letters are then marked in the dead-letter table (one merge, only the replay columns).

A crash between 2. and 3. leaves letters unmarked whose rows are in the main table; the next replay
finds their offsets there in step 2, writes nothing for them and marks them with the version of
the commit that wrote them. Letters that still fail keep ``replayed_at`` null and get the new
error, a retry count and its time.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from shoal.decode import build_decoder
from shoal.errors import ShoalError, Terminal
from shoal.ingest.dead_letter import LETTER_KEY, REPLAY_FIELDS
from shoal.ingest.errors import IngestError
from shoal.ingest.runner import META_FIELDS, ProjectLike, resolve_pipeline
from shoal.ingest.spec import PipelineSpec
from shoal.ingest.transform import BatchTransform
from shoal.lake import Progress, progress
from shoal.lake.table import check_compatible
from shoal.retry import RetryPolicy, retry

if TYPE_CHECKING:
    import pyarrow.dataset as ds

    from shoal.lake import Lake, Table

#: the main table's columns naming the record a row came from
ROW_KEY = ("_kafka_topic", "_kafka_partition", "_kafka_offset")
_REPLAY_NAMES = [f.name for f in REPLAY_FIELDS]
#: the commit metadata naming a replay commit's pipeline (and ``…_batch``: its progress count)
REPLAY_META = "shoal.dlq_replay"
#: how many of the main table's last commits are searched for the replay commit that wrote a
#: record a crashed replay did not mark
HISTORY_LOOKBACK = 200
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
Status = Literal["pending", "replayed", "all"]
Key = tuple[str, int, int]  # (topic, partition, offset)


class DeadLetterError(IngestError, Terminal):
    """Bad input to ``shoal dlq`` (an unknown filter value, a pipeline without dead letters...)."""


# -- pure helpers ------------------------------------------------------------------------------------
def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``30m`` / ``2h`` / ``7d`` / ``1w`` ago, or an ISO date/time (UTC when no zone is given)."""
    m = _DURATION_RE.match(text)
    if m:
        return (now or datetime.now(UTC)) - timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise DeadLetterError(
            f"--since {text!r}: expected a duration such as 30m, 2h, 7d or an ISO time such as "
            "2026-12-01T08:00"
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def preview(value: bytes | None, decoded: Mapping[str, Any] | None = None, limit: int = 160) -> str:
    """What a letter holds, as readable as possible: decoded fields, else text, else hex."""
    if decoded is not None:
        text = json.dumps(decoded, default=str, ensure_ascii=False, separators=(",", ":"))
    elif value is None:
        return "(null value)"
    else:
        try:
            text = value.decode("utf-8")
            if not text.isprintable():
                raise UnicodeDecodeError("utf-8", value, 0, 1, "not printable")
            text = repr(text)
        except UnicodeDecodeError:
            text = "0x" + value[: limit // 2].hex()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def batches_of(n: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, length) slices covering ``n`` items in batches of at most ``size``."""
    for start in range(0, n, max(1, size)):
        yield start, min(size, n - start)


def with_replay_columns(letters: pa.Table) -> pa.Table:
    """Add the replay columns a dead-letter table written before them lacks (as nulls)."""
    for f in REPLAY_FIELDS:
        if f.name not in letters.column_names:
            letters = letters.append_column(f, pa.nulls(letters.num_rows, f.type))
    return letters


def dedupe_letters(letters: pa.Table) -> pa.Table:
    """One row per letter key (the first by position), sorted by topic, partition and offset."""
    if not letters.num_rows:
        return letters
    indexed = letters.append_column("__i", pa.array(range(letters.num_rows), pa.int64()))
    first = indexed.group_by(list(LETTER_KEY), use_threads=False).aggregate([("__i", "min")])
    rows = letters.take(first.column("__i_min"))
    order = pc.sort_indices(
        rows, sort_keys=[("topic", "ascending"), ("partition", "ascending"), ("offset", "ascending")]
    )
    return rows.take(order)


# -- reading ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LetterFilter:
    """Which letters a command looks at."""

    pipeline: str
    since: datetime | None = None
    error_classes: tuple[str, ...] = ()
    status: Status = "all"
    topic: str | None = None
    partition: int | None = None


def dead_letter_table(lake: Lake, spec: PipelineSpec) -> Table | None:
    """The pipeline's dead-letter table, or None when it has never had a dead letter."""
    return lake.find(spec.dlq_table)


def read_letters(
    dlq: Table, flt: LetterFilter, *, columns: Sequence[str] | None = None, version: int | None = None
) -> pa.Table:
    """Letters matching ``flt`` (every replay column present, null where never written)."""
    dataset = dlq.delta(version).to_pyarrow_dataset()
    names = set(dataset.schema.names)
    cond = pc.field("pipeline") == flt.pipeline
    if flt.since is not None:
        cond = cond & (pc.field("failed_at") >= pa.scalar(flt.since, pa.timestamp("us", tz="UTC")))
    if flt.error_classes:
        cond = cond & pc.field("error_class").isin(list(flt.error_classes))
    if flt.topic is not None:
        cond = cond & (pc.field("topic") == flt.topic)
    if flt.partition is not None:
        cond = cond & (pc.field("partition") == pa.scalar(flt.partition, pa.int32()))
    wanted = None if columns is None else [c for c in columns if c in names]
    if wanted is not None and flt.status != "all" and "replayed_at" in names and "replayed_at" not in wanted:
        wanted.append("replayed_at")
    # The status filter runs on the rows read, not in the scan: pyarrow's scan finds nothing for a
    # condition on a column that older files of the table do not have (it should read as null).
    table = with_replay_columns(_plain(dataset.to_table(columns=wanted, filter=cond)))
    if flt.status != "all":
        replayed = pc.is_valid(table.column("replayed_at"))
        table = table.filter(replayed if flt.status == "replayed" else pc.invert(replayed))
    return table if columns is None else table.select(list(columns))


def _plain(table: pa.Table) -> pa.Table:
    views = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}
    if not any(f.type in views for f in table.schema):
        return table
    return table.cast(pa.schema([f.with_type(views.get(f.type, f.type)) for f in table.schema]))


def summarize(letters: pa.Table, bucket: Literal["minute", "hour", "day"] = "hour") -> list[dict[str, Any]]:
    """Counts per (time bucket of ``failed_at``, error class): letters, pending, replayed, still failing."""
    if not letters.num_rows:
        return []
    starts = pc.floor_temporal(letters.column("failed_at"), unit=bucket)
    pending = pc.is_null(letters.column("replayed_at"))
    retried = pc.and_(pending, pc.greater(pc.fill_null(letters.column("retries"), 0), 0))
    t = pa.table(
        {
            "bucket": starts,
            "error_class": letters.column("error_class"),
            "pending": pc.cast(pending, pa.int64()),
            "replayed": pc.cast(pc.invert(pending), pa.int64()),
            "still_failing": pc.cast(retried, pa.int64()),
            "offset": letters.column("offset"),
        }
    )
    agg = t.group_by(["bucket", "error_class"], use_threads=False).aggregate(
        [("offset", "count"), ("pending", "sum"), ("replayed", "sum"), ("still_failing", "sum")]
    )
    rows = [
        {
            "bucket": r["bucket"],
            "error_class": r["error_class"],
            "letters": r["offset_count"],
            "pending": r["pending_sum"],
            "replayed": r["replayed_sum"],
            "still_failing": r["still_failing_sum"],
        }
        for r in agg.to_pylist()
    ]
    rows.sort(key=lambda r: (r["bucket"], r["error_class"] or ""), reverse=True)
    return rows


def newest_letters(dlq: Table, flt: LetterFilter, limit: int) -> pa.Table:
    """The newest ``limit`` letters matching ``flt``, whole (the others are never read in full)."""
    version = dlq.version  # one snapshot for both reads
    heads = read_letters(dlq, flt, columns=[*LETTER_KEY, "failed_at"], version=version)
    order = pc.sort_indices(heads, sort_keys=[("failed_at", "descending"), ("offset", "descending")])
    picked = heads.take(order).slice(0, limit)
    return _fetch(dlq.delta(version).to_pyarrow_dataset(), flt.pipeline, _keys(picked))


def show_rows(spec: PipelineSpec, letters: pa.Table, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` letters with a preview decoded by the pipeline's current decoder."""
    if not letters.num_rows:
        return []
    order = pc.sort_indices(
        letters, sort_keys=[("failed_at", "descending"), ("topic", "ascending"), ("offset", "descending")]
    )
    shown = letters.take(order).slice(0, limit)
    values = shown.column("value").to_pylist()
    res = build_decoder(spec.decode).decode(values)
    decoded: dict[int, dict[str, Any]] = dict(
        zip(res.indices, pa.Table.from_batches([res.batch]).to_pylist(), strict=True)
    )
    out = []
    for i, r in enumerate(shown.to_pylist()):
        out.append(
            {
                "topic": r["topic"],
                "partition": r["partition"],
                "offset": r["offset"],
                "failed_at": r["failed_at"],
                "error_class": r["error_class"],
                "error_message": r["error_message"],
                "key": preview(r["key"], limit=40) if r["key"] is not None else None,
                "decodes_now": i in decoded,
                "preview": preview(r["value"], decoded.get(i)),
                "bytes": None if r["value"] is None else len(r["value"]),
                "replayed_at": r["replayed_at"],
                "replayed_version": r["replayed_version"],
                "retries": r["retries"] or 0,
                "retry_error_class": r["retry_error_class"],
                "retry_error_message": r["retry_error_message"],
            }
        )
    return out


# -- replay ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchEvent:
    """What a replay reports after each step of a batch (``committed``: main table, ``marked``: letters)."""

    phase: Literal["committed", "marked"]
    batch: int
    letters_done: int
    letters_total: int
    version: int | None


@dataclass(frozen=True)
class ReplayReport:
    pipeline: str
    table: str
    dead_letter_table: str
    dry_run: bool
    #: the dead-letter table version the letters were read from
    dead_letter_version: int | None
    letters: int = 0
    replayed: int = 0
    rows: int = 0
    already_present: int = 0
    still_failing: int = 0
    batches: int = 0
    still_failing_by_class: dict[str, int] = field(default_factory=dict)
    versions: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Outcome:
    rows: pa.Table | None  # rows of the letters that succeeded (None: no letter produced a row)
    ok: set[Key]  # letters that decoded and transformed (with or without rows)
    failed: dict[Key, tuple[str, str]]  # letter -> (error class, message)


class DeadLetterReplay:
    """Replays one pipeline's pending dead letters into its main table (see the module doc)."""

    def __init__(
        self,
        lake: Lake,
        spec: PipelineSpec,
        *,
        batch_size: int = 5000,
        policy: RetryPolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if batch_size < 1:
            raise DeadLetterError(f"batch size must be at least 1, got {batch_size}")
        self.lake = lake
        self.spec = spec
        self.batch_size = batch_size
        self.policy = policy or RetryPolicy(attempts=20, base_s=0.1, max_delay_s=5.0)
        self.clock = clock
        self.key = progress.dead_letter_replay(spec.name)

    def run(
        self,
        flt: LetterFilter | None = None,
        *,
        dry_run: bool = False,
        limit: int | None = None,
        on_batch: Callable[[BatchEvent], None] | None = None,
    ) -> ReplayReport:
        started = time.monotonic()
        spec = self.spec
        flt = flt or LetterFilter(spec.name)
        if flt.pipeline != spec.name:
            raise DeadLetterError(f"filter is for pipeline {flt.pipeline!r}, not {spec.name!r}")
        flt = LetterFilter(spec.name, flt.since, flt.error_classes, "pending", flt.topic, flt.partition)
        dlq = dead_letter_table(self.lake, spec)
        if dlq is None:
            return ReplayReport(spec.name, spec.table, spec.dlq_table, dry_run, None)
        if not dry_run:
            dlq.add_columns(REPLAY_FIELDS)  # an older table gains the replay columns (no-op after)
        version = dlq.version
        # only the keys of all pending letters are held; values are read batch by batch
        keys = dedupe_letters(read_letters(dlq, flt, columns=list(LETTER_KEY), version=version))
        if limit is not None:
            keys = keys.slice(0, max(0, limit))
        total = keys.num_rows
        letters_at = dlq.delta(version).to_pyarrow_dataset()
        counts = {"replayed": 0, "rows": 0, "present": 0, "failing": 0, "batches": 0}
        by_class: dict[str, int] = {}
        versions: list[int] = []
        transform = BatchTransform(spec)
        decoder = build_decoder(spec.decode)
        done = 0
        try:
            for number, (start, n) in enumerate(batches_of(total, self.batch_size), 1):
                batch = _fetch(letters_at, spec.name, _keys(keys.slice(start, n)))
                outcome = self._evaluate(batch, decoder, transform)
                committed, present, seen_at = retry(
                    lambda b=batch, o=outcome: self._commit_rows(b, o, dry_run),  # type: ignore[misc]
                    f"dlq replay {spec.name}: commit to {spec.table}",
                    self.policy,
                )
                done += n
                if committed is not None:
                    versions.append(committed)
                if on_batch is not None and not dry_run:
                    on_batch(BatchEvent("committed", number, done, total, committed))
                replayed = outcome.ok - set(present)
                if not dry_run:
                    self._mark(
                        dlq,
                        letters=batch,
                        replayed=replayed,
                        present=present,
                        failed=outcome.failed,
                        committed=committed,
                        seen_at=seen_at,
                    )
                counts["batches"] += 1
                counts["replayed"] += len(replayed)
                counts["present"] += len(present)
                counts["failing"] += len(set(outcome.failed) - set(present))
                if outcome.rows is not None:
                    counts["rows"] += _rows_without(outcome.rows, set(present)).num_rows
                for k, (cls, _msg) in outcome.failed.items():
                    if k not in present:
                        by_class[cls] = by_class.get(cls, 0) + 1
                if on_batch is not None:
                    on_batch(BatchEvent("marked", number, done, total, committed))
        finally:
            transform.close()
        return ReplayReport(
            pipeline=spec.name,
            table=spec.table,
            dead_letter_table=spec.dlq_table,
            dry_run=dry_run,
            dead_letter_version=version,
            letters=total,
            replayed=counts["replayed"],
            rows=counts["rows"],
            already_present=counts["present"],
            still_failing=counts["failing"],
            batches=counts["batches"],
            still_failing_by_class=dict(sorted(by_class.items())),
            versions=versions,
            seconds=round(time.monotonic() - started, 3),
        )

    # -- one batch ---------------------------------------------------------------------------------
    def _evaluate(self, letters: pa.Table, decoder: Any, transform: BatchTransform) -> _Outcome:
        """Decode and transform the letters with the current spec (pure: nothing is written)."""
        keys: list[Key] = list(
            zip(
                letters.column("topic").to_pylist(),
                letters.column("partition").to_pylist(),
                letters.column("offset").to_pylist(),
                strict=True,
            )
        )
        res = decoder.decode(letters.column("value").to_pylist())
        failed: dict[Key, tuple[str, str]] = {keys[f.index]: (f.error_class, f.message) for f in res.failures}
        if not res.indices:
            return _Outcome(None, set(), failed)
        idx = pa.array(res.indices, pa.int64())
        now = self.clock()
        meta = [
            letters.column("topic").take(idx),
            letters.column("partition").take(idx),
            letters.column("offset").take(idx),
            letters.column("timestamp").take(idx).cast(pa.timestamp("ms", tz="UTC")),
            letters.column("key").take(idx),
            pa.array([now] * len(res.indices), pa.timestamp("us", tz="UTC")),
        ]
        decoded = res.batch
        table = pa.Table.from_arrays(
            [*decoded.columns, *meta], schema=pa.schema([*decoded.schema, *META_FIELDS])
        )
        try:
            table, bad = transform.apply(table)
        except ShoalError as exc:
            # wrong for every row (bad SQL, a missing column): fix the spec, nothing is marked
            raise DeadLetterError(f"dlq replay {self.spec.name}: {exc}", pipeline=self.spec.name) from exc
        for t, p, o, cls, msg in bad:
            failed.setdefault((t, p, o), (cls, msg))
        if bad and table.num_rows:
            # one record, one outcome: a letter whose rows partly failed contributes no row
            table = _rows_without(table, {(t, p, o) for t, p, o, _c, _m in bad})
        ok = {keys[i] for i in res.indices} - set(failed)
        return _Outcome(table if table.num_rows else None, ok, failed)

    def _commit_rows(
        self, letters: pa.Table, outcome: _Outcome, dry_run: bool
    ) -> tuple[int | None, dict[Key, int], int | None]:
        """Append the rows the main table does not hold yet.

        Returns the new version (None: nothing written), the letters whose records the table held
        already with a version holding them, and the snapshot checked.
        """
        table = self.lake.find(self.spec.table)
        if table is None and outcome.rows is not None and not dry_run:
            table = self._create_table(outcome.rows.schema)
        if table is None:
            return None, {}, None
        state = Progress.read(table, [self.key])
        snapshot = state.table_version
        assert snapshot is not None
        found = self._present(table, letters, snapshot)
        present = found if dry_run else self._written_by(table, found, snapshot)
        rows = None if outcome.rows is None else _rows_without(outcome.rows, set(present))
        if dry_run or rows is None or not rows.num_rows:
            return None, present, snapshot
        check_compatible(f"dlq replay {self.spec.name}: table {self.spec.table}", table.schema, rows.schema)
        batch = (state.position(self.key) or 0) + 1
        version = table.append(
            rows,
            app_transactions={self.key: batch},
            read_version=snapshot,
            commit_metadata={REPLAY_META: self.spec.name, f"{REPLAY_META}_batch": str(batch)},
        )
        return version, present, snapshot

    def _create_table(self, schema: pa.Schema) -> Table:
        return self.lake.create_table(
            self.spec.table,
            schema,
            partition_by=[p.column for p in self.spec.partition_by],
            # as the sink declares them: the rows are transformed alike
            partition_sources=self.spec.partition_sources,
            derived_columns=self.spec.derived_columns,
            description=self.spec.description or f"Kafka {', '.join(self.spec.subscription)}",
            source=f"kafka:{self.spec.name}",
            exist_ok=True,
        )

    def _present(self, table: Table, letters: pa.Table, snapshot: int) -> dict[Key, int]:
        """The letters whose record already has rows in ``table`` at ``snapshot`` (→ ``snapshot``)."""
        dataset = table.delta(snapshot).to_pyarrow_dataset()
        cond = _records_filter(_keys(letters), *ROW_KEY)
        if cond is None or not set(ROW_KEY) <= set(dataset.schema.names):
            return {}
        found = _keys(_plain(dataset.to_table(columns=list(ROW_KEY), filter=cond)), *ROW_KEY)
        return dict.fromkeys(found, snapshot)

    def _written_by(self, table: Table, present: dict[Key, int], snapshot: int) -> dict[Key, int]:
        """For records found already there: the replay commit that wrote them, when it is recent.

        After a crash between a replay's commit and its marks, the next replay finds the records;
        their commit is among the last ones that carry this pipeline's replay metadata. Others
        (a letter stored twice, a record ingested after all) keep the snapshot that holds them.
        """
        if not present:
            return present
        out = dict(present)
        missing = set(present)
        for entry in table.history(HISTORY_LOOKBACK):
            version = entry.get("version")
            if version is None or version > snapshot or entry.get(REPLAY_META) != self.spec.name:
                continue
            hit = missing & _keys(table.inserted_in(int(version), ROW_KEY), *ROW_KEY)
            for k in hit:
                out[k] = int(version)
            missing -= hit
            if not missing:
                break
        return out

    def _mark(
        self,
        dlq: Table,
        *,
        letters: pa.Table,
        replayed: set[Key],
        present: Mapping[Key, int],
        failed: Mapping[Key, tuple[str, str]],
        committed: int | None,
        seen_at: int | None,
    ) -> None:
        """Write the outcome into the letters (idempotent: the same values again after a crash)."""
        now = self.clock()
        cols: dict[str, list[Any]] = {c: [] for c in [*LETTER_KEY, *_REPLAY_NAMES]}
        for r in letters.select([*LETTER_KEY, "retries"]).to_pylist():
            k: Key = (r["topic"], r["partition"], r["offset"])
            retries = (r["retries"] or 0) + 1
            mark: tuple[Any, ...]
            if k in present:
                mark = (now, present[k], retries, now, None, None)
            elif k in replayed:
                mark = (now, committed if committed is not None else seen_at, retries, now, None, None)
            elif k in failed:
                cls, msg = failed[k]
                mark = (None, None, retries, now, cls, msg[:2000])
            else:
                continue
            for c in LETTER_KEY:
                cols[c].append(r[c])
            for c, v in zip(_REPLAY_NAMES, mark, strict=True):
                cols[c].append(v)
        if not cols["offset"]:
            return
        types = {f.name: f.type for f in REPLAY_FIELDS}
        source = pa.table(
            {
                "pipeline": pa.array(cols["pipeline"], pa.string()),
                "topic": pa.array(cols["topic"], pa.string()),
                "partition": pa.array(cols["partition"], pa.int32()),
                "offset": pa.array(cols["offset"], pa.int64()),
                **{c: pa.array(cols[c], types[c]) for c in _REPLAY_NAMES},
            }
        )
        retry(
            lambda: dlq.update_matched(source, LETTER_KEY, _REPLAY_NAMES),
            f"dlq replay {self.spec.name}: mark letters in {dlq.name}",
            self.policy,
        )


def _rows_without(rows: pa.Table, keys: set[Key]) -> pa.Table:
    """``rows`` minus those of the records named by ``keys``."""
    if not keys or not rows.num_rows:
        return rows
    mine = pa.table(
        {
            "_kafka_topic": pa.array([k[0] for k in keys], pa.string()),
            "_kafka_partition": pa.array([k[1] for k in keys], pa.int32()),
            "_kafka_offset": pa.array([k[2] for k in keys], pa.int64()),
        }
    )
    probe = rows.select(list(ROW_KEY)).append_column("__i", pa.array(range(rows.num_rows), pa.int64()))
    hit = probe.join(mine, list(ROW_KEY), join_type="left semi")
    keep = pc.invert(pc.is_in(pa.array(range(rows.num_rows), pa.int64()), hit.column("__i")))
    return rows.filter(keep)


def _keys(
    t: pa.Table, topic: str = "topic", partition: str = "partition", offset: str = "offset"
) -> set[Key]:
    return set(
        zip(
            t.column(topic).to_pylist(),
            t.column(partition).to_pylist(),
            t.column(offset).to_pylist(),
            strict=True,
        )
    )


def _records_filter(keys: set[Key], topic: str, partition: str, offset: str) -> pc.Expression | None:
    """A scan filter for the records ``keys`` name: per partition, the offset range lets Parquet
    statistics skip files and row groups, and the list picks the exact offsets."""
    groups: dict[tuple[str, int], list[int]] = {}
    for t, p, o in keys:
        groups.setdefault((t, p), []).append(o)
    cond: pc.Expression | None = None
    for (t, p), offsets in sorted(groups.items()):
        term = (
            (pc.field(topic) == t)
            & (pc.field(partition) == pa.scalar(p, pa.int32()))
            & (pc.field(offset) >= min(offsets))
            & (pc.field(offset) <= max(offsets))
            & pc.field(offset).isin(pa.array(sorted(offsets), pa.int64()))
        )
        cond = term if cond is None else cond | term
    return cond


def _fetch(dataset: ds.Dataset, pipeline: str, keys: set[Key]) -> pa.Table:
    """The full letters named by ``keys`` (one per key, in key order)."""
    cond = _records_filter(keys, "topic", "partition", "offset")
    if cond is None:
        return with_replay_columns(_plain(dataset.schema.empty_table()))
    rows = dataset.to_table(filter=(pc.field("pipeline") == pipeline) & cond)
    return dedupe_letters(with_replay_columns(_plain(rows)))


def open_replay(project: ProjectLike, pipeline: str | PipelineSpec, **kwargs: Any) -> DeadLetterReplay:
    """A replay of ``pipeline`` as the project declares it now."""
    return DeadLetterReplay(project.lake, resolve_pipeline(project, pipeline), **kwargs)
