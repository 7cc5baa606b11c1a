"""Infrastructure use case: a simulated fleet (PDUs, hypervisors, disks), its history and live targets,
power patterns and outlier mining over the lake, and evaluation against labelled faults and ASD."""

from __future__ import annotations

from shoal.usecases.infra.anomalies import (
    ANOMALIES,
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

__all__ = [
    "ANOMALIES",
    "ANOMALY_SCHEMA",
    "ENTITIES",
    "FAULT_LABELS",
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
