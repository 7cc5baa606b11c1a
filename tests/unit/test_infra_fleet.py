"""Topology, fault plan, simulator and catalog of the simulated fleet (small fleets, no services)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from shoal.errors import ConfigError
from shoal.sources.prometheus.series import series_id
from shoal.usecases.infra.catalog import metric_families, series_count
from shoal.usecases.infra.faults import FAULT_KINDS, STEPS_PER_DAY, plan_faults
from shoal.usecases.infra.history import Fleet
from shoal.usecases.infra.simulator import FleetSimulator
from shoal.usecases.infra.topology import DISK_MODELS, TopologyConfig, build_topology, is_ancestor

SMALL = TopologyConfig(
    seed=3,
    datacenters_per_region=1,
    podlets_per_datacenter=2,
    racks_per_podlet=3,
    hypervisors_per_rack=6,
    disks_per_hypervisor=2,
)


def test_topology_is_deterministic_and_sized() -> None:
    a, b = build_topology(SMALL), build_topology(SMALL)
    assert a.host_id == b.host_id
    assert a.disk_serial == b.disk_serial
    assert np.array_equal(a.host_util, b.host_util)
    assert (a.n_racks, a.n_hosts, a.n_pdus, a.n_outlets, a.n_disks) == (6, 36, 12, 72, 72)
    other = build_topology(
        TopologyConfig(
            seed=4,
            datacenters_per_region=1,
            podlets_per_datacenter=2,
            racks_per_podlet=3,
            hypervisors_per_rack=6,
        )
    )
    assert other.disk_serial != a.disk_serial
    # every host has a PSU on PDU A and one on PDU B, three phases used per PDU
    for h in range(a.n_hosts):
        pdus = a.outlet_pdu[a.outlet_host == h]
        assert sorted(a.pdu_side[pdus].tolist()) == [0, 1]
    assert set(a.outlet_phase.tolist()) == {0, 1, 2}
    models = {DISK_MODELS[int(m)].model for m in a.disk_model}
    assert len(models) >= 3  # a vendor/model mix, not one model


def test_entity_ids_nest() -> None:
    topo = build_topology(SMALL)
    outlet = topo.outlet_id[0]
    assert is_ancestor(topo.rack_id[0], outlet)
    assert is_ancestor(topo.pdu_id[0], outlet)
    assert is_ancestor(topo.rack_id[0], topo.disk_id[0])
    assert not is_ancestor(topo.rack_id[1], outlet)
    assert not is_ancestor("euw1-dc1-p1-r0", "euw1-dc1-p1-r01")
    ents = topo.entities()
    assert set(ents.column("level").to_pylist()) == {"rack", "pdu", "phase", "outlet", "hypervisor", "disk"}


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ConfigError, match="racks_per_podlet"):
        TopologyConfig(racks_per_podlet=0)


def test_fault_plan_covers_every_kind_after_warmup() -> None:
    topo = build_topology(SMALL)
    start = 20_458 * STEPS_PER_DAY
    plan = plan_faults(topo, start, 3 * STEPS_PER_DAY)
    kinds = {f.kind for f in plan.faults}
    assert kinds == set(FAULT_KINDS)
    assert all(start + STEPS_PER_DAY <= f.start < f.end <= start + 3 * STEPS_PER_DAY for f in plan.faults)
    gt = plan.ground_truth()
    assert gt.column_names == ["entity", "level", "kind", "start", "end", "magnitude"]
    assert gt.num_rows == len(plan.faults)


def test_simulator_physics_and_faults() -> None:
    fleet = Fleet.build(SMALL, start=date(2026, 1, 5), days=3, seed=1)
    topo, sim = fleet.topology, fleet.simulator
    day = sim.day(fleet.start_day + 1)
    # phase current ~ the phase's outlet power / voltage (+ PDU overhead), away from faults
    p = next(
        i
        for i in range(topo.n_pdus)
        if not any(f.kind == "phase_imbalance" and f.index == i for f in fleet.plan.faults)
    )
    outlets = np.flatnonzero((topo.outlet_pdu == p) & (topo.outlet_phase == 0))
    expected = day.outlet_power_w[outlets].sum(axis=0) / day.phase_voltage_v[p * 3] + 0.15
    assert np.median(np.abs(day.phase_current_a[p * 3] - expected)) < 0.1
    # the daily profile: peak hours draw more than night hours
    total = day.outlet_power_w.sum(axis=0)
    assert total[14 * 12 : 16 * 12].mean() > total[2 * 12 : 4 * 12].mean() * 1.1
    # a degrading disk grows bad sectors and then stops reporting
    deg = next(f for f in fleet.plan.faults if f.kind == "disk_degrade")
    before, after = sim.at(deg.start), sim.at(deg.end - 1)
    assert after.disk_reallocated[deg.index, 0] >= before.disk_reallocated[deg.index, 0] + deg.magnitude * 0.9
    if deg.end < (fleet.start_day + fleet.days) * STEPS_PER_DAY:
        assert np.isnan(sim.at(deg.end).disk_reallocated[deg.index, 0])
    # a spike multiplies the outlet's power
    spike = next(f for f in fleet.plan.faults if f.kind == "spike")
    assert (
        sim.at(spike.start).outlet_power_w[spike.index, 0]
        > sim.at(spike.start - 1).outlet_power_w[spike.index, 0] * 1.15
    )
    # same day, same numbers (the exporter and history agree)
    again = FleetSimulator(topo, fleet.plan, seed=1).day(fleet.start_day + 1)
    assert np.array_equal(again.outlet_power_w, day.outlet_power_w)


def test_series_ids_match_scraped_labels() -> None:
    topo = build_topology(SMALL)
    fams = metric_families(topo)
    assert sum(len(f.series_ids) for f in fams) == series_count(topo)
    outlet = fams[0]
    assert outlet.name == "pdu_outlet_power_watts"
    lab = outlet.labels[0]
    assert lab["job"] == "pdu"
    assert lab["instance"] == topo.pdu_id[0]
    assert outlet.series_ids[0] == series_id(outlet.name, lab)
    ids = np.concatenate([f.series_ids for f in fams])
    assert len(np.unique(ids)) == len(ids)


def test_samples_table_layout() -> None:
    fleet = Fleet.build(SMALL, start=date(2026, 1, 5), days=1)
    ((_, tbl),) = list(fleet.iter_days())
    assert tbl.schema.names == ["series_id", "ts", "value", "day"]
    assert str(tbl.schema.field("ts").type) == "timestamp[ms, tz=UTC]"
    assert tbl.num_rows == series_count(fleet.topology) * STEPS_PER_DAY
    assert tbl.column("day").unique().to_pylist() == [date(2026, 1, 5)]
