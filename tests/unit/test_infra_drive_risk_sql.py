"""Drive-risk trees scored in SQL equal LightGBM's predictions; the fleet model refreshes in the runner."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from shoal.lake import Lake
from shoal.models import ModelRunner
from shoal.sources.prometheus.tables import SAMPLES, SERIES, ensure_metrics_tables
from shoal.usecases.infra.drive_risk import FEATURES, DriveRiskConfig, DriveRiskModel, landmarks, train
from shoal.usecases.infra.drive_risk_sql import (
    FLEET_DRIVE_RISK,
    fleet_models,
    score_sql,
    tree_table,
    write_trees,
)
from shoal.usecases.infra.history import Fleet
from shoal.usecases.infra.topology import TopologyConfig

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "drive_risk" / "hds_synthetic.parquet"
CFG = DriveRiskConfig(rounds=40, min_data_in_leaf=20)


@pytest.fixture(scope="module")
def model_and_rows() -> tuple[DriveRiskModel, pa.Table]:
    rows = landmarks(SAMPLE, CFG)
    return train(rows, CFG), rows


def _long_form(model: DriveRiskModel, rows: pa.Table) -> pa.Table:
    x = model.encoder.matrix(rows)
    ent, feat, val = [], [], []
    for i in range(len(x)):
        for j, name in enumerate(FEATURES):
            if not np.isnan(x[i, j]):  # a missing attribute is an absent row, as for the fleet
                ent.append(i)
                feat.append(name)
                val.append(float(x[i, j]))
    return pa.table({"entity": ent, "feature": feat, "value": val})


def test_sql_scores_equal_lightgbm(
    model_and_rows: tuple[DriveRiskModel, pa.Table],
) -> None:
    model, rows = model_and_rows
    rng = np.random.default_rng(1)
    pick = np.sort(rng.choice(rows.num_rows, size=300, replace=False))
    # every positive landmark too: the interesting paths
    positives = np.flatnonzero(rows.column("label").to_numpy(zero_copy_only=False))
    sample = rows.take(pa.array(np.unique(np.concatenate([pick, positives]))))
    con = duckdb.connect()
    con.register("trees_t", tree_table(model.booster))
    con.register("feat_t", _long_form(model, sample))
    got = con.sql(
        f"SELECT * FROM ({score_sql('SELECT * FROM feat_t', trees='trees_t')}) ORDER BY entity"
    ).to_arrow_table()
    want = np.asarray(model.booster.predict(model.encoder.matrix(sample), raw_score=True))
    assert got.num_rows == sample.num_rows
    np.testing.assert_allclose(got.column("raw_score").to_numpy(), want, rtol=1e-9, atol=1e-9)
    # the drivers of risky drives are SMART attributes (the synthetic failures grow sector counts)
    top = got.filter(pa.compute.greater(got.column("p_fail_30d"), 0.5)).column("drivers").to_pylist()
    assert top
    assert all("smart_" in d for d in top)
    con.close()


def test_fleet_risk_refreshes_from_smart_samples(
    tmp_path: Path, model_and_rows: tuple[DriveRiskModel, pa.Table]
) -> None:
    model, _ = model_and_rows
    cfg = TopologyConfig(
        seed=505,
        datacenters_per_region=1,
        podlets_per_datacenter=1,
        racks_per_podlet=2,
        hypervisors_per_rack=4,
        disks_per_hypervisor=2,
    )
    fleet = Fleet.build(cfg, start=date(2026, 1, 5), days=2, seed=505)
    lake = Lake(str(tmp_path / "lake"))
    ensure_metrics_tables(lake)
    lake.table(SERIES).append(fleet.series_table())
    days = [b for _, b in fleet.iter_days()]
    lake.table(SAMPLES).append(days[0])
    write_trees(lake, model.booster)
    with ModelRunner(lake, fleet_models()) as runner:
        (first,) = runner.refresh()
        lake.table(SAMPLES).append(days[1])
        (second,) = runner.refresh()
    assert (first.mode, second.mode) == ("full", "full")
    risk = lake.table(FLEET_DRIVE_RISK).to_arrow()
    topo = fleet.topology
    disks = {f"{topo.host_id[int(h)]}/{d}" for h, d in zip(topo.disk_host, topo.disk_device, strict=True)}
    assert set(risk.column("entity").to_pylist()) == disks
    p = risk.column("p_fail_30d").to_numpy()
    assert ((p > 0) & (p < 1)).all()
