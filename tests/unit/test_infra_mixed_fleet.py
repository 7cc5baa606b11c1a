"""The infra detectors on fleets of mixed workload types (issue 16, fifth session).

Real fleets mix workloads: ``MIXED_WORKLOADS`` plants daytime, nightly-batch, steady and memory-heavy
hosts, so racks and phases carry loads that peak at different hours. The faults are the same as on
the daytime-only fleet of the same seed (workload types draw from their own random stream). The
detectors run with the SQL the runner models run (``infra.stream_ew``, its episodes and the peer
windows that make ``infra.anomalies``), over DuckDB views of the simulated tables: no lake needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import cast

import duckdb
import pyarrow as pa
import pytest

from shoal.usecases.infra.anomalies import peer_inputs_sql, peer_windows_sql
from shoal.usecases.infra.demo_step import SEED, demo_topology
from shoal.usecases.infra.evaluate import Score, score_events
from shoal.usecases.infra.ew_models import ew_episodes, stream_ew_sql
from shoal.usecases.infra.history import Fleet
from shoal.usecases.infra.power import SqlConnection, connect_tables
from shoal.usecases.infra.topology import MIXED_WORKLOADS, WORKLOADS, TopologyConfig

# the demo's small fleet (the mix is on there since the sixth session)
DEMO = demo_topology(small=True)
# test_infra_ew_model.py's fleet, with the mix on
EW = TopologyConfig(
    seed=303,
    datacenters_per_region=1,
    podlets_per_datacenter=1,
    racks_per_podlet=3,
    hypervisors_per_rack=6,
    disks_per_hypervisor=1,
    workload_mix=MIXED_WORKLOADS,
)


def _connect(fleet: Fleet) -> duckdb.DuckDBPyConnection:
    """The fleet's metric tables and ``infra.stream_ew`` built whole (as the model's first refresh)."""
    samples = pa.concat_tables([t for _, t in fleet.iter_days()])
    con = connect_tables({"metrics.series": fleet.series_table(), "metrics.samples": samples})
    stream = con.sql(stream_ew_sql()).to_arrow_table()
    con.register("__stream_ew", stream)
    con.execute("CREATE SCHEMA IF NOT EXISTS infra")
    con.execute("CREATE VIEW infra.stream_ew AS SELECT * FROM __stream_ew")
    return con


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[Fleet, duckdb.DuckDBPyConnection]]:
    fleet = Fleet.build(DEMO, start=date(2026, 1, 5), days=3, seed=SEED)
    con = _connect(fleet)
    yield fleet, con
    con.close()


def _anomalies(con: duckdb.DuckDBPyConnection) -> tuple[pa.Table, pa.Table]:
    """``infra.anomalies`` (the model's SQL: episodes plus peer windows) and the episodes alone."""
    episodes = ew_episodes(cast(SqlConnection, con))
    peers = con.sql(peer_windows_sql(peer_inputs_sql())).to_arrow_table().cast(episodes.schema)
    return pa.concat_tables([episodes, peers]), episodes


def test_the_fleet_mixes_four_workload_types(demo: tuple[Fleet, duckdb.DuckDBPyConnection]) -> None:
    fleet, _ = demo
    assert len(set(fleet.topology.host_workload.tolist())) == len(WORKLOADS)


def test_demo_fleet_with_the_mix_keeps_its_faults_and_peer_precision(
    demo: tuple[Fleet, duckdb.DuckDBPyConnection],
) -> None:
    fleet, con = demo
    found, episodes = _anomalies(con)
    score: Score = score_events(found, fleet.ground_truth())
    alone = score_events(episodes, fleet.ground_truth())
    # measured (seed 7, small, 3 days; the demo's fleet since the sixth session): P 0.84 / R 1.00 /
    # F1 0.914 (12 of 12 faults, 63 windows); rack, phase and disk peers precision 1.00; the streaming
    # detector alone P 0.82 / R 0.67. Before the host rule read warm samples (PARTNER_SCORE): P 0.83 /
    # F1 0.906, alone P 0.80 (a nightly-batch host's ramp, 00:00-03:00 local, outran the 1-hour EW
    # baseline hot on one feed, 0.98-0.99 on the other). Before the seasonal peer baselines (fifth
    # session): P 0.70 / R 0.83 / F1 0.76. Floors: the demo's (test_infra_demo_step)
    assert score.recall >= 0.9, score.as_dict()
    assert score.precision >= 0.8, score.as_dict()
    assert score.f1 >= 0.91, score.as_dict()
    for detector in ("rack_peers", "phase_balance", "disk_peers"):
        assert score.precision_by_detector[detector] >= 0.9, score.as_dict()
    assert score.recall_by_kind["rack_draw"] == 1.0, score.as_dict()
    assert score.recall_by_kind["phase_imbalance"] == 1.0, score.as_dict()
    assert alone.recall >= 0.6, alone.as_dict()
    assert alone.precision >= 0.8, alone.as_dict()


def test_streaming_episodes_on_a_mixed_fleet() -> None:
    fleet = Fleet.build(EW, start=date(2026, 1, 5), days=4, seed=303)
    con = _connect(fleet)
    try:
        score = score_events(ew_episodes(cast(SqlConnection, con)), fleet.ground_truth())
    finally:
        con.close()
    # measured (seed 303): P 0.94 / R 0.67, 8 of 12 (daytime: P 0.92, 9 of 12); the same with the
    # warm partner rule (sixth session). The fault the mix
    # costs is a x0.16 oscillation on a memory-heavy host whose likelihood peaks at 0.989 against the
    # 0.99 threshold (0.991 on the daytime fleet): the margin, not a baseline that misses the cycle
    assert score.precision >= 0.9, score.as_dict()
    assert score.detected >= 8, score.as_dict()
    assert score.recall_by_kind.get("disk_degrade", 0.0) == 0.0
