"""Detectors on a small simulated fleet, via DuckDB views over Arrow tables (no lake, no services).

The detector thresholds were chosen on a training fleet (seed 101); this fleet (seed 202 shape, smaller)
is held out. The data are seeded, so the measured F1 is reproducible; the floor sits just under it.
"""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest

from shoal.usecases.infra.anomalies import ANOMALY_SCHEMA, detect_all
from shoal.usecases.infra.evaluate import score_events
from shoal.usecases.infra.history import Fleet
from shoal.usecases.infra.power import (
    connect_tables,
    pdu_ab_balance,
    peak_vs_average,
    phase_balance,
    power_profile,
)
from shoal.usecases.infra.topology import MIXED_WORKLOADS, TopologyConfig

CFG = TopologyConfig(
    seed=202,
    datacenters_per_region=1,
    podlets_per_datacenter=2,
    racks_per_podlet=4,
    hypervisors_per_rack=8,
    disks_per_hypervisor=2,
)


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return Fleet.build(CFG, start=date(2026, 1, 5), days=3, seed=202)


@pytest.fixture(scope="module")
def con(fleet: Fleet):  # type: ignore[no-untyped-def]
    samples = pa.concat_tables([t for _, t in fleet.iter_days()])
    c = connect_tables({"metrics.series": fleet.series_table(), "metrics.samples": samples})
    yield c
    c.close()


@pytest.fixture(scope="module")
def anomalies(con) -> pa.Table:  # type: ignore[no-untyped-def]
    return detect_all(con)


def test_faults_are_found_and_healthy_entities_mostly_not(fleet: Fleet, anomalies: pa.Table) -> None:
    assert anomalies.schema == ANOMALY_SCHEMA
    score = score_events(anomalies, fleet.ground_truth())
    assert score.faults >= 12
    assert score.f1 >= MEASURED_F1_FLOOR, score.as_dict()
    assert score.recall_by_kind["disk_degrade"] == 1.0
    assert score.precision >= 0.9
    # healthy entities: few anomalies land on racks that had no fault
    faulty_racks = {
        "-".join(e.split("/")[0].split("-")[:4]) for e in fleet.ground_truth()["entity"].to_pylist()
    }
    healthy_hits = [
        e
        for e in anomalies["entity"].to_pylist()
        if "-".join(e.split("/")[0].split("-")[:4]) not in faulty_racks
    ]
    assert len(healthy_hits) <= 0.1 * anomalies.num_rows


MEASURED_F1_FLOOR = 0.95  # measured 0.9565 (P 1.0, R 11/12: a x1.11 rack draw is missed)


def test_a_fleet_of_mixed_workloads_keeps_the_floors() -> None:
    """The same fleet with four workload types (daytime, nightly-batch, steady, memory-heavy): the
    same faults (workload types draw from their own stream), but racks and phases now carry loads
    that peak at different hours. Measured (seed 202): P 1.00 / R 0.92 / F1 0.957, as on the daytime
    fleet, phase balance precision 1.00 (3 windows); before the seasonal baselines (a flat median
    over the range): P 0.56 / F1 0.69, phase balance precision 0.16 (16 false windows of 19)."""
    fleet = Fleet.build(
        TopologyConfig(**{**CFG.__dict__, "workload_mix": MIXED_WORKLOADS}),
        start=date(2026, 1, 5),
        days=3,
        seed=202,
    )
    assert len(set(fleet.topology.host_workload.tolist())) == 4
    samples = pa.concat_tables([t for _, t in fleet.iter_days()])
    con = connect_tables({"metrics.series": fleet.series_table(), "metrics.samples": samples})
    try:
        score = score_events(detect_all(con), fleet.ground_truth())
    finally:
        con.close()
    assert score.faults >= 12
    assert score.f1 >= MEASURED_F1_FLOOR, score.as_dict()
    assert score.precision >= 0.9, score.as_dict()
    assert score.recall_by_kind["disk_degrade"] == 1.0
    assert score.precision_by_detector["phase_balance"] >= 0.9, score.as_dict()
    assert score.precision_by_detector["rack_peers"] >= 0.9, score.as_dict()


def test_strict_matching_is_not_more_generous(fleet: Fleet, anomalies: pa.Table) -> None:
    loose = score_events(anomalies, fleet.ground_truth())
    strict = score_events(anomalies, fleet.ground_truth(), strict=True)
    assert strict.tp <= loose.tp
    assert strict.detected <= loose.detected


def test_power_patterns(con, fleet: Fleet) -> None:  # type: ignore[no-untyped-def]
    prof = power_profile(con, "podlet")
    assert set(prof["hour_of_day"].to_pylist()) == set(range(24))
    assert len(set(prof["entity"].to_pylist())) == 2
    peaks = peak_vs_average(con, "rack")
    assert peaks.num_rows == fleet.topology.n_racks
    assert min(peaks["peak_to_avg"].to_pylist()) > 1.0
    dev = peak_vs_average(con, "device")
    assert dev.num_rows == fleet.topology.n_hosts
    assert all(m for m in dev["disk_model"].to_pylist())
    pb = phase_balance(con)
    assert min(pb["phase_ratio"].to_pylist()) >= 1.0
    ab = pdu_ab_balance(con)
    ratios = sorted(ab["ab_ratio"].to_pylist())
    assert 0.8 < ratios[len(ratios) // 2] < 1.25  # redundant feeds share roughly equally


def test_score_protocol_on_hand_made_events() -> None:
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 1, 6, tzinfo=UTC)
    gt = pa.table(
        {
            "entity": ["r-dc1-p1-r01", "r-dc1-p1-r02-pdu-a"],
            "level": ["rack", "pdu"],
            "kind": ["rack_draw", "phase_imbalance"],
            "start": [t0, t0],
            "end": [t0 + timedelta(hours=2)] * 2,
        }
    )
    an = pa.table(
        {
            "entity": ["r-dc1-p1-r01-pdu-b/L1/o03", "r-dc1-p1-r03", "r-dc1-p1-r02-pdu-a"],
            "window_start": [t0 + timedelta(minutes=30), t0, t0 + timedelta(days=1)],
            "window_end": [
                t0 + timedelta(minutes=40),
                t0 + timedelta(hours=1),
                t0 + timedelta(days=1, hours=1),
            ],
        }
    )
    s = score_events(an, gt)
    assert (s.tp, s.fp, s.detected, s.faults) == (1, 2, 1, 2)
    assert s.precision == pytest.approx(1 / 3)
    assert s.recall == pytest.approx(0.5)
