"""Vectorised fleet simulator: 5-minute samples for every PDU outlet/phase, hypervisor and disk.

Values are computed one UTC day at a time (288 steps) with numpy; the noise of a day is drawn from a
generator seeded by (seed, day), so a day's values are the same whether history is generated in bulk
or the exporter asks for "now". Daily load profiles follow each region's local time and the host's
workload type (``topology.WORKLOADS``): ``daytime`` peaks ~15:00 with its trough ~03:00 and is lower
at weekends, ``nightly-batch`` runs hard around 03:00, ``steady`` is flat and ``memory-heavy`` keeps
its memory near full with a mild daytime CPU swing. Memory used is the hypervisor's own overhead plus
its VMs' memory, which follows the workload's pattern and moves with VM migrations (a load shift) and
empties during a reboot. Faults and benign events from a :class:`FaultPlan` are applied on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np

from shoal.usecases.infra.faults import STEP_S, STEPS_PER_DAY, FaultPlan
from shoal.usecases.infra.topology import Topology

# power-on hours in the topology are as of this instant
REFERENCE_STEP = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) // STEP_S


@dataclass(frozen=True)
class SimBlock:
    """Simulated values for consecutive steps; arrays are (entities, steps)."""

    steps: np.ndarray  # int64 step numbers (unix seconds // 300)
    outlet_power_w: np.ndarray  # (n_outlets, n)
    phase_current_a: np.ndarray  # (n_pdus * 3, n), pdu-major
    phase_voltage_v: np.ndarray  # (n_pdus * 3, n)
    host_cpu_ratio: np.ndarray  # (n_hosts, n)
    host_power_w: np.ndarray  # (n_hosts, n)
    host_mem_used: np.ndarray  # (n_hosts, n) bytes
    host_mem_total: np.ndarray  # (n_hosts, n) bytes
    disk_reallocated: np.ndarray  # (n_disks, n), NaN once a disk has failed
    disk_pending: np.ndarray
    disk_temp_c: np.ndarray
    disk_power_on_hours: np.ndarray

    @property
    def n_steps(self) -> int:
        return int(self.steps.shape[0])

    def column(self, i: int) -> SimBlock:
        """The block restricted to its i-th step (keeps 2-D arrays)."""
        sl = slice(i, i + 1)
        return SimBlock(
            self.steps[sl],
            self.outlet_power_w[:, sl],
            self.phase_current_a[:, sl],
            self.phase_voltage_v[:, sl],
            self.host_cpu_ratio[:, sl],
            self.host_power_w[:, sl],
            self.host_mem_used[:, sl],
            self.host_mem_total[:, sl],
            self.disk_reallocated[:, sl],
            self.disk_pending[:, sl],
            self.disk_temp_c[:, sl],
            self.disk_power_on_hours[:, sl],
        )


@dataclass(frozen=True)
class _Shapes:
    cpu: np.ndarray  # (workload, region, steps): multiplies the host's mean utilisation
    mem: np.ndarray  # (workload, region, steps): multiplies the host's VM memory


def _workload_shapes(local: np.ndarray, weekend: bool) -> _Shapes:
    """Daily patterns of each workload type from the regions' local hour (regions x steps)."""
    day_cos = np.cos(2 * np.pi * (local - 15.0) / 24.0)
    daytime = 0.75 + 0.25 * day_cos
    if weekend:
        daytime = daytime * 0.85
    # batch window centred on 03:00 local (circular distance), the same every day of the week
    d = np.abs((local - 3.0 + 12.0) % 24.0 - 12.0)
    batch = np.exp(-0.5 * (d / 1.5) ** 2)
    flat = np.ones_like(local)
    cpu = np.stack([daytime, 0.35 + 1.6 * batch, flat, 0.85 + 0.12 * day_cos])
    mem = np.stack([0.92 + 0.08 * day_cos, 0.75 + 0.45 * batch, flat, 0.98 + 0.02 * day_cos])
    return _Shapes(cpu, mem)


class FleetSimulator:
    """Deterministic simulator of ``topology`` with the faults of ``plan``."""

    def __init__(self, topology: Topology, plan: FaultPlan | None = None, seed: int = 0) -> None:
        self.topology = topology
        self.plan = plan or FaultPlan((), ())
        self.seed = seed
        self._day = lru_cache(maxsize=2)(self._simulate_day)

    def day(self, day: int) -> SimBlock:
        """All 288 steps of UTC day ``day`` (days since the Unix epoch)."""
        return self._day(day)

    def at(self, step: int) -> SimBlock:
        """The single step ``step``."""
        return self._day(step // STEPS_PER_DAY).column(step % STEPS_PER_DAY)

    def _simulate_day(self, day: int) -> SimBlock:
        topo = self.topology
        n = STEPS_PER_DAY
        s0 = day * n
        steps = s0 + np.arange(n, dtype=np.int64)
        rng = np.random.default_rng([topo.config.seed, self.seed, day, 3])
        hour_utc = (steps % n) * (STEP_S / 3600.0)

        # per-region daily profiles in local time, per workload type (daytime: lower at weekends)
        local = (hour_utc[None, :] + topo.region_offset_h[:, None]) % 24.0
        weekday = (day + 3) % 7  # 1970-01-01 was a Thursday
        host_region = topo.rack_region[topo.host_rack]
        load = np.ones((topo.n_hosts, n))
        for ev in self.plan.benign:
            if ev.kind == "load_shift" and ev.start < s0 + n and ev.end > s0:
                a, b = max(ev.start - s0, 0), min(ev.end - s0, n)
                load[ev.index, a:b] *= ev.magnitude
        shape = _workload_shapes(local, weekday >= 5)
        wl = topo.host_workload
        cpu_shape = shape.cpu[wl, host_region]  # daytime hosts: exactly ``profile`` above
        util = topo.host_util[:, None] * cpu_shape * load
        util = np.clip(util + rng.normal(0.0, 0.015, util.shape), 0.01, 1.0)
        power = topo.host_idle_w[:, None] + (topo.host_max_w - topo.host_idle_w)[:, None] * util**0.85
        power += rng.normal(0.0, 3.0, power.shape)

        for ev in self.plan.benign:
            if ev.kind == "reboot" and ev.start < s0 + n and ev.end > s0:
                # off for most of the window, then fans at full speed while booting
                a, b = max(ev.start - s0, 0), min(ev.end - s0, n)
                power[ev.index, a:b] *= 0.05
                if b < n:
                    power[ev.index, b] = topo.host_max_w[ev.index] * 0.9

        # memory: VMs' memory follows the workload's pattern and the migrations; its own noise stream
        mrng = np.random.default_rng([topo.config.seed, self.seed, day, 5])
        vm_part = topo.host_vm_mem[:, None] * shape.mem[wl, host_region] * load
        vm_part *= 1.0 + mrng.normal(0.0, 0.004, vm_part.shape)
        for ev in self.plan.benign:
            if ev.kind == "reboot" and ev.start < s0 + n and ev.end > s0:
                a, b = max(ev.start - s0, 0), min(ev.end - s0, n)
                vm_part[ev.index, a:b] = 0.0
        total = topo.host_mem_total[:, None]
        mem_used = np.minimum(topo.host_mem_overhead[:, None] + vm_part, 0.99 * total)
        mem_total = np.broadcast_to(total, mem_used.shape).copy()

        faults = [f for f in self.plan.faults if f.start < s0 + n and f.end > s0]
        hpr = topo.config.hypervisors_per_rack
        for f in faults:
            if f.kind == "rack_draw":  # cooling/fan trouble: power rises without more CPU work
                a, b = max(f.start - s0, 0), min(f.end - s0, n)
                hosts = slice(f.index * hpr, (f.index + 1) * hpr)
                power[hosts, a:b] *= f.magnitude

        outlet = power[topo.outlet_host] * topo.outlet_share[:, None]
        # metering noise is heavy-tailed (Student t, 3 d.o.f.)
        outlet += 1.5 * rng.standard_t(3, outlet.shape)
        for f in faults:
            a, b = max(f.start - s0, 0), min(f.end - s0, n)
            if f.kind in {"spike", "drop"}:
                outlet[f.index, a:b] *= f.magnitude
            elif f.kind == "oscillation":
                phase = (steps[a:b] - f.start) // max(f.aux // 2, 1) % 2
                outlet[f.index, a:b] *= 1.0 + f.magnitude * np.where(phase == 0, 1.0, -1.0)
        outlet = np.maximum(outlet, 0.0)

        pdu_region = topo.rack_region[topo.pdu_rack]
        nominal = topo.region_voltage[pdu_region]
        voltage = np.repeat(nominal, 3)[:, None] * (
            1.0 + 0.004 * np.cos(2 * np.pi * (hour_utc[None, :] - 4.0) / 24.0)
        )
        voltage = voltage + rng.normal(0.0, 0.4, voltage.shape)
        per_pdu = outlet.reshape(topo.n_pdus, hpr, n)
        current = np.empty((topo.n_pdus, 3, n))
        for ph in range(3):
            current[:, ph, :] = per_pdu[:, ph::3, :].sum(axis=1)
        current = current / voltage.reshape(topo.n_pdus, 3, n) + 0.15
        current += rng.normal(0.0, 0.03, current.shape)
        for f in faults:
            if f.kind == "phase_imbalance":  # unmetered load landed on one phase
                a, b = max(f.start - s0, 0), min(f.end - s0, n)
                current[f.index, f.aux, a:b] += f.magnitude * current[f.index, :, a:b].mean(axis=0)
        current = current.reshape(topo.n_pdus * 3, n)

        # disks
        dh = topo.disk_host
        temp = (
            topo.disk_base_temp[:, None] + 10.0 * (util[dh] - 0.3) + rng.normal(0.0, 0.4, (topo.n_disks, n))
        )
        poh = np.floor(topo.disk_poh0[:, None] + np.maximum(steps[None, :] - REFERENCE_STEP, 0) / 12.0)
        poh = np.broadcast_to(poh, (topo.n_disks, n)).copy()
        realloc = np.broadcast_to(topo.disk_realloc0[:, None], (topo.n_disks, n)).copy()
        pending = np.zeros((topo.n_disks, n))
        for ev in self.plan.benign:
            if ev.kind == "sector_bump" and ev.start < s0 + n:
                realloc[ev.index, max(ev.start - s0, 0) :] += ev.magnitude
        for f in self.plan.faults:
            if f.kind != "disk_degrade" or f.start >= s0 + n:
                continue
            x = np.clip((steps - f.start) / (f.end - f.start), 0.0, 1.0)
            realloc[f.index] += np.floor(f.magnitude * x**2)
            pending[f.index] += np.floor(f.aux * x**1.5)
            temp[f.index] += 4.0 * x
            dead = steps >= f.end
            for arr in (realloc, pending, temp, poh):
                arr[f.index, dead] = np.nan
        return SimBlock(
            steps=steps,
            outlet_power_w=outlet,
            phase_current_a=current,
            phase_voltage_v=voltage,
            host_cpu_ratio=util,
            host_power_w=power,
            host_mem_used=np.round(mem_used),
            host_mem_total=mem_total,
            disk_reallocated=realloc,
            disk_pending=pending,
            disk_temp_c=np.round(temp),
            disk_power_on_hours=poh,
        )
