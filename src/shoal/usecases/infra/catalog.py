"""The metric series the simulated fleet exposes: names, labels, series ids and entity ids.

Series labels are what a Prometheus scrape of the exporter yields (``job`` and ``instance`` included:
the file_sd file sets ``instance`` to the target id), so history written directly and history scraped
from the exporter share series ids (:func:`shoal.sources.prometheus.series.series_id`).

Targets: one per PDU (job ``pdu``) and one per hypervisor (job ``hypervisor``, with its disks' SMART).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shoal.sources.prometheus.series import series_id
from shoal.usecases.infra.simulator import SimBlock
from shoal.usecases.infra.topology import DISK_MODELS, PHASES, Topology


@dataclass(frozen=True)
class MetricFamily:
    name: str
    help: str
    level: str  # entity level of its series: outlet | phase | hypervisor | disk
    job: str
    values: Callable[[SimBlock], np.ndarray]  # (n_series, n_steps)
    labels: tuple[dict[str, str], ...]
    entities: tuple[str, ...]
    targets: tuple[str, ...]  # target id (= instance label) per series
    series_ids: np.ndarray  # int64


def _family(  # noqa: PLR0917 (one row of the table below)
    name: str,
    help_: str,
    level: str,
    job: str,
    values: Callable[[SimBlock], np.ndarray],
    labels: list[dict[str, str]],
    entities: list[str],
    targets: list[str],
) -> MetricFamily:
    full = [{**lab, "job": job, "instance": t} for lab, t in zip(labels, targets, strict=True)]
    ids = np.fromiter((series_id(name, lab) for lab in full), dtype=np.int64, count=len(full))
    return MetricFamily(name, help_, level, job, values, tuple(full), tuple(entities), tuple(targets), ids)


def metric_families(topo: Topology) -> list[MetricFamily]:
    """Every metric family of the fleet, series in the row order of the simulator's arrays."""
    outlet_labels: list[dict[str, str]] = []
    for o in range(topo.n_outlets):
        p = int(topo.outlet_pdu[o])
        h = int(topo.outlet_host[o])
        outlet_labels.append(
            {
                **topo.pdu_labels(p),
                "phase": PHASES[int(topo.outlet_phase[o])],
                "outlet": topo.outlet_id[o].rsplit("/", 1)[1],
                "host": topo.host_id[h],
            }
        )
    outlet_targets = [topo.pdu_id[int(p)] for p in topo.outlet_pdu]
    phase_labels = [{**topo.pdu_labels(p), "phase": ph} for p in range(topo.n_pdus) for ph in PHASES]
    phase_entities = [f"{topo.pdu_id[p]}/{ph}" for p in range(topo.n_pdus) for ph in PHASES]
    phase_targets = [topo.pdu_id[p] for p in range(topo.n_pdus) for _ in PHASES]
    host_labels = [topo.host_labels(h) for h in range(topo.n_hosts)]
    disk_labels: list[dict[str, str]] = []
    for d in range(topo.n_disks):
        m = DISK_MODELS[int(topo.disk_model[d])]
        disk_labels.append(
            {
                **topo.host_labels(int(topo.disk_host[d])),
                "device": topo.disk_device[d],
                "vendor": m.vendor,
                "model": m.model,
                "serial": topo.disk_serial[d],
                "protocol": m.protocol,
            }
        )
    disk_targets = [topo.host_id[int(h)] for h in topo.disk_host]

    fams = [
        _family(
            "pdu_outlet_power_watts",
            "Active power drawn on a PDU outlet.",
            "outlet",
            "pdu",
            lambda b: b.outlet_power_w,
            outlet_labels,
            list(topo.outlet_id),
            outlet_targets,
        ),
        _family(
            "pdu_phase_current_amperes",
            "RMS current on a PDU input phase.",
            "phase",
            "pdu",
            lambda b: b.phase_current_a,
            phase_labels,
            phase_entities,
            phase_targets,
        ),
        _family(
            "pdu_phase_voltage_volts",
            "RMS voltage on a PDU input phase.",
            "phase",
            "pdu",
            lambda b: b.phase_voltage_v,
            phase_labels,
            phase_entities,
            phase_targets,
        ),
        _family(
            "hypervisor_cpu_utilisation_ratio",
            "Share of the hypervisor's CPU time in use.",
            "hypervisor",
            "hypervisor",
            lambda b: b.host_cpu_ratio,
            host_labels,
            list(topo.host_id),
            list(topo.host_id),
        ),
        _family(
            "hypervisor_power_watts",
            "Power the hypervisor's BMC reports.",
            "hypervisor",
            "hypervisor",
            lambda b: b.host_power_w,
            host_labels,
            list(topo.host_id),
            list(topo.host_id),
        ),
        _family(
            "hypervisor_memory_used_bytes",
            "Memory in use on the hypervisor (its VMs and its own).",
            "hypervisor",
            "hypervisor",
            lambda b: b.host_mem_used,
            host_labels,
            list(topo.host_id),
            list(topo.host_id),
        ),
        _family(
            "hypervisor_memory_total_bytes",
            "Memory installed in the hypervisor.",
            "hypervisor",
            "hypervisor",
            lambda b: b.host_mem_total,
            host_labels,
            list(topo.host_id),
            list(topo.host_id),
        ),
        _family(
            "smart_reallocated_sectors",
            "SMART reallocated sector count (NVMe: media errors).",
            "disk",
            "hypervisor",
            lambda b: b.disk_reallocated,
            disk_labels,
            list(topo.disk_id),
            disk_targets,
        ),
        _family(
            "smart_pending_sectors",
            "SMART current pending sector count.",
            "disk",
            "hypervisor",
            lambda b: b.disk_pending,
            disk_labels,
            list(topo.disk_id),
            disk_targets,
        ),
        _family(
            "smart_temperature_celsius",
            "Drive temperature.",
            "disk",
            "hypervisor",
            lambda b: b.disk_temp_c,
            disk_labels,
            list(topo.disk_id),
            disk_targets,
        ),
        _family(
            "smart_power_on_hours",
            "SMART power-on hours.",
            "disk",
            "hypervisor",
            lambda b: b.disk_power_on_hours,
            disk_labels,
            list(topo.disk_id),
            disk_targets,
        ),
    ]
    return fams


def series_count(topo: Topology) -> int:
    return topo.n_outlets + 6 * topo.n_pdus + 4 * topo.n_hosts + 4 * topo.n_disks
