"""Fault plans: labelled faults (the ground truth) and unlabelled benign events.

Time is counted in 5-minute steps since the Unix epoch (``step = unix_seconds // 300``). A fault
covers ``[start, end)`` steps. Benign events (VM migrations changing a host's load, a disk remapping
a couple of sectors) are applied by the simulator too but are not labelled: they are what makes a
detector's false positives honest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from shoal.usecases.infra.topology import DISK_MODELS, Topology

STEP_S = 300
STEPS_PER_DAY = 86_400 // STEP_S

FAULT_KINDS = ("spike", "drop", "oscillation", "rack_draw", "phase_imbalance", "disk_degrade")
FAULT_LEVEL = {
    "spike": "outlet",
    "drop": "outlet",
    "oscillation": "outlet",
    "rack_draw": "rack",
    "phase_imbalance": "pdu",
    "disk_degrade": "disk",
}

GROUND_TRUTH_SCHEMA = pa.schema(
    [
        pa.field("entity", pa.string(), nullable=False),
        pa.field("level", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("start", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("end", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("magnitude", pa.float64()),
    ]
)


@dataclass(frozen=True)
class Fault:
    kind: str
    index: int  # index of the entity in its topology array (outlet, rack, pdu or disk)
    entity: str
    start: int  # first step (inclusive)
    end: int  # last step (exclusive)
    magnitude: float
    aux: int = 0  # phase for phase_imbalance, period (steps) for oscillation

    @property
    def level(self) -> str:
        return FAULT_LEVEL[self.kind]


@dataclass(frozen=True)
class BenignEvent:
    kind: str  # "load_shift" | "reboot" (host) | "sector_bump" (disk)
    index: int
    start: int
    end: int
    magnitude: float


@dataclass(frozen=True)
class FaultConfig:
    """Expected faults per entity per day, and a floor so that small fleets still get each kind."""

    spike: float = 0.004
    drop: float = 0.002
    oscillation: float = 0.002
    rack_draw: float = 0.03
    phase_imbalance: float = 0.015
    disk_degrade: float = 0.004
    min_per_kind: int = 2
    warmup_steps: int = STEPS_PER_DAY  # no labelled fault during the first day (baselines need history)
    load_shift: float = 0.03  # benign: VM migration changes a host's load (per host per day)
    reboot: float = 0.01  # benign: maintenance reboot, power dips then surges (per host per day)
    sector_bump: float = 0.01  # benign: a healthy disk remaps a couple of sectors (per disk per day)


@dataclass(frozen=True)
class FaultPlan:
    faults: tuple[Fault, ...]
    benign: tuple[BenignEvent, ...]

    def ground_truth(self) -> pa.Table:
        """The labels, kept apart from the metrics (lake table ``infra.fault_labels``)."""
        return ground_truth_table(self.faults)


def step_to_datetime(step: int) -> datetime:
    return datetime.fromtimestamp(step * STEP_S, tz=UTC)


def datetime_to_step(ts: datetime) -> int:
    return int(ts.timestamp()) // STEP_S


def ground_truth_table(faults: tuple[Fault, ...] | list[Fault]) -> pa.Table:
    return pa.table(
        {
            "entity": [f.entity for f in faults],
            "level": [f.level for f in faults],
            "kind": [f.kind for f in faults],
            "start": pa.array([f.start * STEP_S * 1000 for f in faults], pa.int64()).cast(
                pa.timestamp("ms", tz="UTC")
            ),
            "end": pa.array([f.end * STEP_S * 1000 for f in faults], pa.int64()).cast(
                pa.timestamp("ms", tz="UTC")
            ),
            "magnitude": [f.magnitude for f in faults],
        },
        schema=GROUND_TRUTH_SCHEMA,
    )


def plan_faults(
    topology: Topology, start_step: int, n_steps: int, config: FaultConfig | None = None, seed: int = 0
) -> FaultPlan:
    """Draw faults and benign events for ``[start_step, start_step + n_steps)``, deterministically."""
    cfg = config or FaultConfig()
    rng = np.random.default_rng([topology.config.seed, seed, start_step, n_steps, 2])
    days = n_steps / STEPS_PER_DAY
    lo = start_step + min(cfg.warmup_steps, n_steps // 2)
    hi = start_step + n_steps
    busy: dict[tuple[str, int], list[tuple[int, int]]] = {}

    def free(level: str, idx: int, s: int, e: int) -> bool:
        return all(e <= a or s >= b for a, b in busy.get((level, idx), []))

    # durations in steps (low, high) per kind
    durations = {
        "spike": (1, 3),
        "drop": (6, 36),
        "oscillation": (12, 48),
        "rack_draw": (24, 144),
        "phase_imbalance": (24, 144),
        "disk_degrade": (STEPS_PER_DAY // 2, 3 * STEPS_PER_DAY),
    }
    population = {
        "spike": topology.n_outlets,
        "drop": topology.n_outlets,
        "oscillation": topology.n_outlets,
        "rack_draw": topology.n_racks,
        "phase_imbalance": topology.n_pdus,
        "disk_degrade": topology.n_disks,
    }
    disk_prone = np.array([DISK_MODELS[int(m)].degrade_prone for m in topology.disk_model])
    faults: list[Fault] = []
    for kind in FAULT_KINDS:
        rate = float(getattr(cfg, kind))
        n = max(int(rng.poisson(rate * population[kind] * days)), cfg.min_per_kind)
        dlo, dhi = durations[kind]
        level = FAULT_LEVEL[kind]
        placed = 0
        for _ in range(n * 20):
            if placed == n:
                break
            # a fault never outlasts the labelled part of the window
            dur = min(int(rng.integers(dlo, dhi + 1)), max((hi - lo) // 2, 1))
            if kind == "disk_degrade":
                idx = int(rng.choice(topology.n_disks, p=disk_prone / disk_prone.sum()))
                # a degrading disk fails at `end`; let it fail inside the window
                s = int(rng.integers(lo, hi - dur))
            else:
                idx = int(rng.integers(0, population[kind]))
                s = int(rng.integers(lo, hi - dur))
            e = s + dur
            # one fault at a time per rack, so labels stay attributable
            rack = _rack_of(topology, level, idx)
            if not free("rack", rack, s - 12, e + 12):
                continue
            busy.setdefault(("rack", rack), []).append((s, e))
            entity, magnitude, aux = _describe(topology, kind, idx, rng)
            faults.append(Fault(kind, idx, entity, s, e, magnitude, aux))
            placed += 1
    faults.sort(key=lambda f: (f.start, f.entity))

    benign: list[BenignEvent] = []
    n_shift = int(rng.poisson(cfg.load_shift * topology.n_hosts * days))
    for _ in range(n_shift):
        h = int(rng.integers(0, topology.n_hosts))
        s = int(rng.integers(start_step, hi))
        e = s + int(rng.integers(24, 2 * STEPS_PER_DAY))
        benign.append(BenignEvent("load_shift", h, s, e, float(rng.uniform(0.4, 2.2))))
    for _ in range(int(rng.poisson(cfg.reboot * topology.n_hosts * days))):
        h = int(rng.integers(0, topology.n_hosts))
        s = int(rng.integers(start_step, hi))
        benign.append(BenignEvent("reboot", h, s, s + int(rng.integers(2, 5)), 0.0))
    n_bump = int(rng.poisson(cfg.sector_bump * topology.n_disks * days))
    for _ in range(n_bump):
        d = int(rng.integers(0, topology.n_disks))
        s = int(rng.integers(start_step, hi))
        benign.append(BenignEvent("sector_bump", d, s, s + 1, float(rng.integers(1, 4))))
    return FaultPlan(tuple(faults), tuple(benign))


def _rack_of(topology: Topology, level: str, idx: int) -> int:
    if level == "outlet":
        return int(topology.host_rack[int(topology.outlet_host[idx])])
    if level == "pdu":
        return int(topology.pdu_rack[idx])
    if level == "disk":
        return int(topology.host_rack[int(topology.disk_host[idx])])
    return idx


def _describe(topology: Topology, kind: str, idx: int, rng: np.random.Generator) -> tuple[str, float, int]:
    if kind == "spike":
        return topology.outlet_id[idx], float(rng.uniform(1.3, 2.5)), 0
    if kind == "drop":
        return topology.outlet_id[idx], float(rng.uniform(0.0, 0.5)), 0
    if kind == "oscillation":
        return topology.outlet_id[idx], float(rng.uniform(0.15, 0.5)), int(rng.integers(2, 5))
    if kind == "rack_draw":
        return topology.rack_id[idx], float(rng.uniform(1.1, 1.4)), 0
    if kind == "phase_imbalance":
        return topology.pdu_id[idx], float(rng.uniform(0.15, 0.6)), int(rng.integers(0, 3))
    # disk_degrade: magnitude = reallocated sectors reached at failure
    return topology.disk_id[idx], float(rng.integers(10, 2000)), int(rng.integers(0, 200))
