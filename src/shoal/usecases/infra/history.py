"""Generate days of simulated fleet history straight into the lake's metric tables.

Each UTC day is simulated with numpy (all series x 288 steps at once), turned into one Arrow table
in the ``metrics.samples`` layout and appended in its own commit carrying the app transaction
``infra.history:<seeds>`` = day number, so re-running a generation skips days already written
(exactly once). Series go to ``metrics.series`` (only ids not present yet), the fault labels to
``infra.fault_labels`` and the entity inventory to ``infra.entities``; labels never sit next to the
metrics they describe.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoal.lake import Lake, progress
from shoal.sources.prometheus.tables import SAMPLES, SERIES, SERIES_SCHEMA, ensure_metrics_tables
from shoal.usecases.infra.catalog import MetricFamily, metric_families
from shoal.usecases.infra.faults import (
    GROUND_TRUTH_SCHEMA,
    STEP_S,
    STEPS_PER_DAY,
    FaultConfig,
    FaultPlan,
    plan_faults,
)
from shoal.usecases.infra.simulator import FleetSimulator, SimBlock
from shoal.usecases.infra.topology import Topology, TopologyConfig, build_topology

FAULT_LABELS = "infra.fault_labels"
ENTITIES = "infra.entities"
_TS = pa.timestamp("ms", tz="UTC")
_SOURCE = "shoal.usecases.infra"


@dataclass(frozen=True)
class HistoryResult:
    days_written: int
    days_skipped: int
    samples: int
    series: int
    faults: int
    seconds: float

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0


class Fleet:
    """A topology, its fault plan over a time window and the simulator that renders both."""

    def __init__(
        self,
        topology: Topology,
        start: date,
        days: int,
        fault_config: FaultConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.topology = topology
        self.start_day = (start - date(1970, 1, 1)).days
        self.days = days
        self.seed = seed
        self.plan: FaultPlan = plan_faults(
            topology, self.start_day * STEPS_PER_DAY, days * STEPS_PER_DAY, fault_config, seed
        )
        self.simulator = FleetSimulator(topology, self.plan, seed)
        self.families: list[MetricFamily] = metric_families(topology)
        self.series_ids = np.concatenate([f.series_ids for f in self.families])

    @classmethod
    def build(
        cls,
        config: TopologyConfig | None = None,
        start: date | None = None,
        days: int = 7,
        fault_config: FaultConfig | None = None,
        seed: int = 0,
    ) -> Fleet:
        return cls(build_topology(config), start or date(2026, 1, 5), days, fault_config, seed)

    @property
    def app_id(self) -> str:
        cfg = self.topology.config
        return progress.generated("infra.history", cfg.seed, self.seed, self.start_day)

    def series_table(self) -> pa.Table:
        first = datetime.fromtimestamp(self.start_day * 86_400, tz=UTC)
        metric: list[str] = []
        labels: list[list[tuple[str, str]]] = []
        for fam in self.families:
            metric.extend([fam.name] * len(fam.labels))
            labels.extend(sorted(lab.items()) for lab in fam.labels)
        n = len(metric)
        return pa.table(
            {
                "series_id": pa.array(self.series_ids, pa.int64()),
                "metric": metric,
                "labels": pa.array(labels, SERIES_SCHEMA.field("labels").type),
                "first_seen": pa.array([first] * n, _TS),
            },
            schema=SERIES_SCHEMA,
        )

    def samples_for(self, block: SimBlock) -> pa.Table:
        """One block as ``metrics.samples`` rows (NaN values, i.e. failed disks, are left out)."""
        values = np.concatenate([fam.values(block) for fam in self.families], axis=0)
        n_series, n = values.shape
        ids = np.repeat(self.series_ids, n)
        ts = np.tile(block.steps * (STEP_S * 1000), n_series)
        flat = values.reshape(-1)
        keep = ~np.isnan(flat)
        if not keep.all():
            ids, ts, flat = ids[keep], ts[keep], flat[keep]
        days = (ts // 86_400_000).astype(np.int32)
        return pa.table(
            {
                "series_id": pa.array(ids, pa.int64()),
                "ts": pa.array(ts, pa.int64()).cast(_TS),
                "value": pa.array(flat, pa.float64()),
                "day": pa.array(days, pa.int32()).cast(pa.date32()),
            }
        )

    def iter_days(self) -> Iterator[tuple[int, pa.Table]]:
        for d in range(self.start_day, self.start_day + self.days):
            yield d, self.samples_for(self.simulator.day(d))

    def ground_truth(self) -> pa.Table:
        return self.plan.ground_truth()


def write_history(lake: Lake, fleet: Fleet) -> HistoryResult:
    """Write the fleet's series, samples (one commit per day), labels and inventory into ``lake``."""
    t0 = time.perf_counter()
    ensure_metrics_tables(lake)
    series_tbl = lake.table(SERIES)
    new_series = fleet.series_table()
    existing = series_tbl.to_arrow(columns=["series_id"]).column("series_id")
    if len(existing):
        new_series = new_series.filter(pc.invert(pc.is_in(new_series["series_id"], value_set=existing)))
    if new_series.num_rows:
        series_tbl.append(new_series)

    samples_tbl = lake.table(SAMPLES)
    done = progress.Progress.read(samples_tbl, [fleet.app_id])
    written = skipped = n_samples = 0
    for d, batch in fleet.iter_days():
        if done.applied({fleet.app_id: d}):
            skipped += 1
            continue
        samples_tbl.append(batch, app_transactions={fleet.app_id: d})
        written += 1
        n_samples += batch.num_rows

    labels = lake.create_table(
        FAULT_LABELS,
        GROUND_TRUTH_SCHEMA,
        description="Ground truth of simulated faults (entity, level, kind, [start, end))",
        source=_SOURCE,
    )
    gt = fleet.ground_truth()
    if gt.num_rows:
        labels.merge(gt, keys=["entity", "kind", "start"])
    entities = fleet.topology.entities()
    ent_tbl = lake.create_table(
        ENTITIES, entities.schema, description="Simulated fleet inventory", source=_SOURCE
    )
    ent_tbl.merge(entities, keys=["entity"])
    return HistoryResult(
        days_written=written,
        days_skipped=skipped,
        samples=n_samples,
        series=len(fleet.series_ids),
        faults=gt.num_rows,
        seconds=time.perf_counter() - t0,
    )
