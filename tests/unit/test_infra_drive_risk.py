"""Drive failure forecasting on the synthetic start-stop sample in tests/data/drive_risk (no real drives)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from shoal.config import init_project
from shoal.errors import ConfigError, NotFoundError
from shoal.project import Project
from shoal.usecases.infra.cli import app as infra_app
from shoal.usecases.infra.drive_risk import (
    AT_FAILURE_HOURS,
    DRIVE_RISK,
    FEATURES,
    DriveRiskConfig,
    Encoder,
    fpr_at_recall,
    is_test_drive,
    landmarks,
    precision_at_ratio,
    precision_at_recall,
    roc_auc,
    split,
)

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "drive_risk" / "hds_synthetic.parquet"


def _one_drive(tmp_path: Path, fails: bool) -> Path:
    smart = {f"smart_{k}": [0.0, 0.0, 5.0] for k in (5, 10, 12, 187, 188, 189, 196, 197, 198)}
    tbl = pa.table(
        {
            "serial_number": ["A"] * 3,
            "model": ["M"] * 3,
            "manufacturer": ["X"] * 3,
            "size_tb": [4.0] * 3,
            "tstart": pa.array([0, 1000, 2000], pa.int32()),
            "tstop": pa.array([1000, 2000, 2500], pa.int32()),
            "fails": [0.0, 0.0, 1.0 if fails else 0.0],
            **smart,
        }
    )
    path = tmp_path / "one.parquet"
    pq.write_table(tbl, path)
    return path


def test_landmarks_label_the_last_horizon_and_drop_censored(tmp_path: Path) -> None:
    cfg = DriveRiskConfig(horizon_hours=720, step_hours=720)
    failed = landmarks(_one_drive(tmp_path, fails=True), cfg)
    assert failed.column("t").to_pylist() == [0, 720, 1440, 2160]
    assert failed.column("label").to_pylist() == [False, False, False, True]  # 2500 - 2160 <= 720
    # as-of values: at 2160 the interval from 2000 (5 sectors); growth over 720 h from the 1440 value (0)
    assert failed.column("smart_5").to_pylist()[-1] == 5.0
    assert failed.column("smart_5_growth").to_pylist()[-1] == 5.0
    # when the attributes last moved, and how often, as of each landmark (the past only)
    last = failed.slice(3, 1).to_pylist()[0]
    assert last["since_change"] == 160  # the interval that began at 2000
    assert last["smart_5_since_change"] == 160
    assert last["changes"] == 1  # intervals begun in (1440, 2160]
    assert last["changes3"] == 2  # ... in (0, 2160]
    assert last["smart_5_growth3"] == 5.0
    assert failed.column("smart_5_since_change").to_pylist()[:3] == [None, None, None]  # never moved yet
    survived = landmarks(_one_drive(tmp_path, fails=False), cfg)
    # a survivor's landmarks within 720 h of its record's end have no known outcome
    assert survived.column("t").to_pylist() == [0, 720, 1440]
    assert not any(survived.column("label").to_pylist())


def test_failure_state_rows_and_the_growth_features_use_the_past_only(tmp_path: Path) -> None:
    cfg = DriveRiskConfig(horizon_hours=720, step_hours=720)
    rows = landmarks(_one_drive(tmp_path, fails=True), cfg, at_failure=True)
    # the grid's landmarks, then one row on the failed drive's last day (not a landmark: evaluation only)
    assert rows.column("t").to_pylist() == [0, 720, 1440, 2160, 2500 - AT_FAILURE_HOURS]
    assert rows.column("at_failure").to_pylist() == [False] * 4 + [True]
    assert rows.column("hours_to_failure").to_pylist() == [2500, 1780, 1060, 340, AT_FAILURE_HOURS]
    at_2160 = rows.slice(3, 1).to_pylist()[0]
    assert at_2160["smart_5_growth1w"] == 5.0  # 5 at 2160, 0 as of 1992 (the row that began at 1000)
    assert at_2160["smart_5_accel"] == 5.0  # 5 in the last 720 h, none in the 1,440 h before
    assert at_2160["bad_sectors"] == 15.0  # reallocated + pending + offline uncorrectable
    at_1440 = rows.slice(2, 1).to_pylist()[0]
    assert at_1440["smart_5_growth1w"] == 0.0  # the change at 2000 is in the future: not seen
    survivor = landmarks(_one_drive(tmp_path, fails=False), cfg, at_failure=True)
    assert not any(survivor.column("at_failure").to_pylist())
    assert survivor.column("hours_to_failure").null_count == survivor.num_rows


def test_model_relative_ranks_come_from_the_training_rows_of_the_same_model() -> None:
    def rows(models: list[str], hours: list[float]) -> pa.Table:
        n = len(models)
        cols = {c: pa.array([0.0] * n) for c in FEATURES if c not in ("model", "manufacturer")}
        cols = {k: v for k, v in cols.items() if not k.endswith("_model_pct")}
        return pa.table({**cols, "power_on_hours": hours, "model": models, "manufacturer": ["X"] * n})

    train_rows = rows(["A", "A", "A", "A", "B"], [100.0, 200.0, 300.0, 400.0, 5.0])
    enc = Encoder.fit(train_rows)
    x = enc.matrix(rows(["A", "A", "B", "C"], [250.0, 400.0, 5.0, 1.0]))
    pct = x[:, FEATURES.index("power_on_hours_model_pct")]
    # mid-rank among model A's training ages: 2 of 4 below 250; 400 ties the top one
    assert pct[:3].tolist() == [0.5, 0.875, 0.5]
    assert np.isnan(pct[3])  # a model the training drives never had
    masked = Encoder.fit(train_rows, frozenset({"power_on_hours_model_pct"}))
    assert np.isnan(masked.matrix(train_rows)[:, FEATURES.index("power_on_hours_model_pct")]).all()


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"nope\.parquet"):
        landmarks(tmp_path / "nope.parquet", DriveRiskConfig())
    pq.write_table(pa.table({"serial_number": ["A"]}), tmp_path / "thin.parquet")
    with pytest.raises(ConfigError, match="missing column"):
        landmarks(tmp_path / "thin.parquet", DriveRiskConfig())


def test_metrics_on_hand_made_scores() -> None:
    y = np.array([1, 0, 1, 0, 0, 1], dtype=bool)
    s = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    assert roc_auc(y, s) == pytest.approx(5 / 9)
    assert precision_at_recall(y, s, 2 / 3) == pytest.approx(2 / 3)
    # a binary scorer: ties are taken in random order, so precision is the tie group's expectation
    b = np.array([1, 1, 0, 0, 0, 0], dtype=float)  # flags one positive and one negative
    assert precision_at_recall(y, b, 1 / 3) == pytest.approx(0.5)
    assert precision_at_recall(y, b, 1.0) == pytest.approx(0.5)  # 3 of 6 in expectation
    assert roc_auc(y, b) == pytest.approx(0.5 + 0.5 * (1 / 3 - 1 / 3))
    # the operating point behind a precision, and the precision it has at another class balance
    assert fpr_at_recall(y, s, 2 / 3) == pytest.approx(1 / 3)  # 0.8 flagged of three negatives
    assert precision_at_ratio(2 / 3, 1 / 3, 1.0) == pytest.approx(2 / 3)
    assert precision_at_ratio(2 / 3, 1 / 3, 5000.0) == pytest.approx((2 / 3) / (2 / 3 + 5000 / 3))


def test_dev_drives_come_from_the_training_side() -> None:
    rows = pa.table({"serial_number": [f"S{i}" for i in range(3000)], "t": [0] * 3000})
    cfg = DriveRiskConfig()
    fit, held = split(rows, cfg)
    dev_fit, dev = split(rows, cfg, dev=True)
    held_s, dev_s = (
        set(held.column("serial_number").to_pylist()),
        set(dev.column("serial_number").to_pylist()),
    )
    fit_s, dev_fit_s = (
        set(fit.column("serial_number").to_pylist()),
        set(dev_fit.column("serial_number").to_pylist()),
    )
    assert not held_s & dev_s
    assert not held_s & dev_fit_s
    assert not dev_s & dev_fit_s
    assert dev_s | dev_fit_s == fit_s  # choices never see a held-out drive
    assert 0.15 < len(dev_s) / 3000 < 0.25


def test_split_is_by_drive_and_stable() -> None:
    serials = pa.array([f"S{i}" for i in range(2000)])
    a = is_test_drive(serials, 0.3)
    assert (a == is_test_drive(serials, 0.3)).all()
    assert 0.25 < a.mean() < 0.35


def test_cli_trains_evaluates_and_writes_the_ranking(tmp_path: Path) -> None:
    init_project(tmp_path)
    res = CliRunner().invoke(
        infra_app, ["drive-risk", "--data", str(SAMPLE), "-p", str(tmp_path), "--format", "json"]
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout[res.stdout.index("{") :])
    assert set(report["scorers"]) == {"gbm", "rule", "model_rate"}
    test_drives = report["test"]["drives"]
    assert report["train"]["drives"] + test_drives == 600
    gbm = report["scorers"]["gbm"]
    # the synthetic failures grow sector counts before failing: the trees must beat both baselines
    assert gbm["auc"] > report["scorers"]["rule"]["auc"]
    assert gbm["auc"] > report["scorers"]["model_rate"]["auc"]
    assert gbm["precision_at_recall_50"] >= report["scorers"]["rule"]["precision_at_recall_50"]
    # the second protocol: each held-out drive once, at its last landmark
    per_drive = report["per_drive"]
    assert per_drive["drives"] == test_drives
    assert 0 < per_drive["positives"] <= report["test"]["positives"]
    assert set(per_drive["scorers"]) == {"gbm", "rule", "model_rate"}
    assert per_drive["scorers"]["gbm"]["auc"] > per_drive["scorers"]["rule"]["auc"]
    # the published per-record definition: failed drives on their last day against healthy time
    state = report["failure_state"]
    assert state["failure_samples"] == per_drive["positives"]  # one per failed held-out drive
    gbm_state = state["scorers"]["gbm"]
    assert gbm_state["balanced_precision_at_recall_67"] >= gbm_state["precision_at_recall_67"]
    assert gbm_state["published_ratio_precision_at_recall_67"] <= gbm_state["precision_at_recall_67"]
    assert 0 <= report["calibration"]["gbm"]["ece"] < report["calibration"]["gbm"]["observed_rate"]
    risk = Project.load(tmp_path).lake.table(DRIVE_RISK).to_arrow().sort_by("risk_rank")
    assert risk.num_rows == test_drives
    assert risk.column("risk_rank").to_pylist() == list(range(1, test_drives + 1))
    p = risk.column("p_fail_30d").to_numpy()
    assert (np.diff(p) <= 0).all()
    assert ((p >= 0) & (p <= 1)).all()
    top = risk.slice(0, 5).to_pylist()
    assert all(r["drivers"].startswith("smart_") or "smart_" in r["drivers"] for r in top)
