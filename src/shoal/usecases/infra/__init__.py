"""Infrastructure use case: a simulated fleet (PDUs, hypervisors, disks), its history and live targets,
power patterns and outlier mining over the lake, and evaluation against labelled faults and ASD."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from shoal.usecases.registry import UseCase

if TYPE_CHECKING:
    from shoal.usecases.infra.anomalies import (
        ANOMALIES,
        ANOMALIES_BATCH,
        ANOMALY_SCHEMA,
        DetectorConfig,
        detect_all,
        disk_peer_anomalies,
        phase_anomalies,
        rack_peer_anomalies,
        temporal_anomalies,
        write_anomalies,
    )
    from shoal.usecases.infra.evaluate import Score, score_events
    from shoal.usecases.infra.exporter import ExporterServer, FleetExporter
    from shoal.usecases.infra.faults import FaultConfig, FaultPlan, plan_faults
    from shoal.usecases.infra.history import ENTITIES, FAULT_LABELS, Fleet, HistoryResult, write_history
    from shoal.usecases.infra.power import (
        connect_tables,
        pdu_ab_balance,
        peak_vs_average,
        phase_balance,
        power_profile,
    )
    from shoal.usecases.infra.simulator import FleetSimulator, SimBlock
    from shoal.usecases.infra.topology import Topology, TopologyConfig, build_topology

# Registered as the ``infra`` entry point of ``shoal.usecases`` (pyproject.toml).
USECASE = UseCase(
    name="infra",
    title="infrastructure → power and disk outliers",
    # a project listing these (the demo's does) keeps infra.stream_ew and the hypervisor profiles
    # fresh with `shoal refresh` / the watcher as samples land, not only when the demo step builds them
    models="shoal.usecases.infra.models",
    cli="shoal.usecases.infra.cli:app",
    demo_step="shoal.usecases.infra.demo_step:run",
)

# The names below load on first use (PEP 562): the CLI reads USECASE and mounts the command group
# on every start, and the modules behind them pull in numpy, httpx and the Prometheus source.
_LAZY = {
    "ANOMALIES": "anomalies",
    "ANOMALIES_BATCH": "anomalies",
    "ANOMALY_SCHEMA": "anomalies",
    "DetectorConfig": "anomalies",
    "ENTITIES": "history",
    "ExporterServer": "exporter",
    "FAULT_LABELS": "history",
    "FaultConfig": "faults",
    "FaultPlan": "faults",
    "Fleet": "history",
    "FleetExporter": "exporter",
    "FleetSimulator": "simulator",
    "HistoryResult": "history",
    "Score": "evaluate",
    "SimBlock": "simulator",
    "Topology": "topology",
    "TopologyConfig": "topology",
    "build_topology": "topology",
    "connect_tables": "power",
    "detect_all": "anomalies",
    "disk_peer_anomalies": "anomalies",
    "pdu_ab_balance": "power",
    "peak_vs_average": "power",
    "phase_anomalies": "anomalies",
    "phase_balance": "power",
    "plan_faults": "faults",
    "power_profile": "power",
    "rack_peer_anomalies": "anomalies",
    "score_events": "evaluate",
    "temporal_anomalies": "anomalies",
    "write_anomalies": "anomalies",
    "write_history": "history",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)


__all__ = [
    "ANOMALIES",
    "ANOMALIES_BATCH",
    "ANOMALY_SCHEMA",
    "ENTITIES",
    "FAULT_LABELS",
    "USECASE",
    "DetectorConfig",
    "ExporterServer",
    "FaultConfig",
    "FaultPlan",
    "Fleet",
    "FleetExporter",
    "FleetSimulator",
    "HistoryResult",
    "Score",
    "SimBlock",
    "Topology",
    "TopologyConfig",
    "build_topology",
    "connect_tables",
    "detect_all",
    "disk_peer_anomalies",
    "pdu_ab_balance",
    "peak_vs_average",
    "phase_anomalies",
    "phase_balance",
    "plan_faults",
    "power_profile",
    "rack_peer_anomalies",
    "score_events",
    "temporal_anomalies",
    "write_anomalies",
    "write_history",
]
