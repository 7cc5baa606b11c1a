"""Hypervisor profiles, classes and rack placement hints as runner models on a small simulated fleet."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow.compute as pc

from harness.fleet import fleet_lake
from shoal.models import ModelRunner
from shoal.usecases.infra.history import Fleet
from shoal.usecases.infra.profiles import HYPERVISOR_CLASSES, HYPERVISOR_PROFILE, PLACEMENT_HINTS, models
from shoal.usecases.infra.topology import TopologyConfig

CFG = TopologyConfig(
    seed=404,
    datacenters_per_region=1,
    podlets_per_datacenter=1,
    racks_per_podlet=3,
    hypervisors_per_rack=5,
    disks_per_hypervisor=1,
)


def test_profiles_classes_and_hints(tmp_path: Path) -> None:
    fleet = Fleet.build(CFG, start=date(2026, 1, 5), days=2, seed=404)
    lake = fleet_lake(tmp_path / "lake", fleet)
    with ModelRunner(lake, models()) as runner:
        assert [r.mode for r in runner.refresh()] == ["full", "full", "full"]
    hosts = fleet.topology.host_id
    profile = lake.table(HYPERVISOR_PROFILE).to_arrow()
    assert profile.num_rows == len(hosts) * 24
    assert pc.min(profile["samples"]).as_py() == 2 * 2 * 12  # 2 days x 2 metrics x 12 samples an hour
    cpu = profile["cpu_ratio"].to_numpy()
    assert ((cpu >= 0) & (cpu <= 1)).all()

    classes = lake.table(HYPERVISOR_CLASSES).to_arrow()
    assert sorted(classes["host"].to_pylist()) == sorted(hosts)
    for row in classes.to_pylist():
        shape, level = row["profile_class"].split("/")
        assert shape in {"flat", "daytime", "nighttime"}
        assert level in {"low", "medium", "high"}
        assert (shape == "flat") == (row["peak_cpu"] < 1.25 * row["mean_cpu"])
        assert (level == "low") == (row["mean_cpu"] < 0.3)

    hints = lake.table(PLACEMENT_HINTS).to_arrow()
    n_racks = len(fleet.topology.rack_id)
    vm_profiles = set(classes["profile_class"].to_pylist())
    assert hints.num_rows == n_racks * len(vm_profiles)
    for vm in vm_profiles:
        rows = sorted((r for r in hints.to_pylist() if r["vm_profile"] == vm), key=lambda r: r["fit_rank"])
        assert [r["fit_rank"] for r in rows] == list(range(1, n_racks + 1))
        rises = [r["peak_rise_w"] for r in rows]
        assert rises == sorted(rises)  # rank 1 is the rack whose peak rises least
        # a 100 W-average VM raises a peak by at least its own minimum and at most its own peak
        assert all(0 < x < 300 for x in rises)
