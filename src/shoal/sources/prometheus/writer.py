"""Write Prometheus samples, series and target health into the lake.

:class:`SampleBatch` collects columns cheaply (plain lists); :class:`MetricsWriter` turns a batch
into at most three commits: new series merged into ``metrics.series`` (idempotent), the samples
appended to ``metrics.samples`` and target health appended to ``metrics.targets``. Samples and
targets carry the caller's app transactions *in the same commit*, so a retried round whose
commit already landed is skipped instead of written twice.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from shoal.lake import Lake, Progress
from shoal.sources.prometheus.series import series_id
from shoal.sources.prometheus.tables import (
    SAMPLES,
    SAMPLES_SCHEMA,
    SERIES,
    SERIES_SCHEMA,
    TARGETS,
    TARGETS_SCHEMA,
    TS,
    ensure_metrics_tables,
)


@dataclass
class SampleBatch:
    """Samples in columns plus the series they reference (id -> (metric, labels))."""

    series_ids: list[int] = field(default_factory=list)
    ts_ms: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    series: dict[int, tuple[str, dict[str, str]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.series_ids)

    def add(
        self,
        metric: str,
        labels: dict[str, str],
        ts_ms: int,
        value: float,
        known: set[int] | frozenset[int] = frozenset(),
    ) -> int:
        """Add a sample; series already in ``known`` (stored in the lake) are not kept again."""
        sid = series_id(metric, labels)
        if sid not in self.series and sid not in known:
            self.series[sid] = (metric, labels)
        self.series_ids.append(sid)
        self.ts_ms.append(ts_ms)
        self.values.append(value)
        return sid

    def extend(self, other: SampleBatch) -> None:
        self.series_ids.extend(other.series_ids)
        self.ts_ms.extend(other.ts_ms)
        self.values.extend(other.values)
        for sid, meta in other.series.items():
            self.series.setdefault(sid, meta)

    def samples_table(self) -> pa.Table:
        """Rows for ``metrics.samples``, deduplicated on (series_id, ts) keeping the last value."""
        ts = pa.array(self.ts_ms, pa.int64()).cast(TS)
        table = pa.Table.from_arrays(
            [pa.array(self.series_ids, pa.int64()), ts, pa.array(self.values, pa.float64())],
            names=["series_id", "ts", "value"],
        )
        if table.num_rows > 1:
            # use_threads=False keeps input order, so "last" is the value received last.
            table = table.group_by(["series_id", "ts"], use_threads=False).aggregate([("value", "last")])
            table = table.rename_columns(["series_id", "ts", "value"])
        day = pc.cast(table["ts"], pa.date32())
        return pa.Table.from_arrays([*table.columns, day], schema=SAMPLES_SCHEMA)


@dataclass(frozen=True)
class WriteResult:
    samples: int
    new_series: int
    skipped: bool
    targets: int = 0


class MetricsWriter:
    """Writes batches to the metrics tables; thread-safe (one write at a time)."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self._lock = threading.Lock()
        self._known: set[int] | None = None
        self._series_version = -1

    def known_series(self) -> set[int]:
        """Ids already in ``metrics.series`` (loaded once, then kept up to date by this writer).

        Callers may read it to skip keeping labels of known series; only the writer adds to it.
        """
        with self._lock:
            return self._known_series()

    def _known_series(self) -> set[int]:
        if self._known is None:
            ensure_metrics_tables(self.lake)
            self._reload_known()
        assert self._known is not None
        return self._known

    def _reload_known(self) -> None:
        series = self.lake.table(SERIES)
        self._series_version = series.version
        self._known = set(series.to_arrow(columns=["series_id"])["series_id"].to_pylist())

    def write(
        self,
        batch: SampleBatch,
        *,
        first_seen_ms: int,
        targets: list[dict[str, Any]] | None = None,
        app_transactions: Mapping[str, int] | None = None,
    ) -> WriteResult:
        """Commit ``batch`` (and target health rows) unless ``app_transactions`` already landed."""
        txns = dict(app_transactions or {})
        with self._lock:
            known = self._known_series()
            samples_t = self.lake.table(SAMPLES)
            targets_t = self.lake.table(TARGETS)
            # without progress keys (remote_write) nothing can have been applied: no log read
            samples_done = bool(txns) and Progress.read(samples_t, txns).applied(txns)
            targets_done = targets is None or (bool(txns) and Progress.read(targets_t, txns).applied(txns))
            if samples_done and targets_done:
                return WriteResult(0, 0, skipped=True)
            series_t = self.lake.table(SERIES)
            if series_t.version != self._series_version:
                # another writer added series since we last looked: refresh, so the append
                # below only adds ids that are really new (keeps metrics.series unique)
                self._reload_known()
                known = self._known_series()
            new_ids = [sid for sid in batch.series if sid not in known]
            if new_ids and not samples_done:
                # Series first: a sample never references a series missing from metrics.series.
                rows = pa.Table.from_arrays(
                    [
                        pa.array(new_ids, pa.int64()),
                        pa.array([batch.series[s][0] for s in new_ids], pa.string()),
                        pa.array(
                            [list(batch.series[s][1].items()) for s in new_ids],
                            SERIES_SCHEMA.field("labels").type,
                        ),
                        pa.array([first_seen_ms] * len(new_ids), pa.int64()).cast(TS),
                    ],
                    schema=SERIES_SCHEMA,
                )
                # append, not merge: `known` is exact as of _series_version, and a merge of
                # millions of new series (a first scrape of 1,000 targets) is several times slower
                self._series_version = series_t.append(rows)
                known.update(new_ids)
            written = 0
            if not samples_done:
                table = batch.samples_table()
                written = table.num_rows
                samples_t.append(table, app_transactions=txns or None)
            n_targets = 0
            if targets is not None and not targets_done:
                ttable = pa.Table.from_pylist(targets, schema=TARGETS_SCHEMA)
                n_targets = ttable.num_rows
                targets_t.append(ttable, app_transactions=txns or None)
            return WriteResult(written, len(new_ids) if not samples_done else 0, False, n_targets)
