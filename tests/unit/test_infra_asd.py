"""ASD loader and evaluator on the real files committed in tests/data/asd (MIT, see its LICENSE)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shoal.errors import ConfigError, NotFoundError
from shoal.usecases.infra.asd import evaluate_asd, fit, load_server, point_adjust, resolve_asd_dir

ASD_DIR = Path(__file__).resolve().parents[1] / "data" / "asd"


def test_loader_reads_train_test_and_labels() -> None:
    srv = load_server(ASD_DIR / "omi-1.csv.gz")
    assert srv.name == "omi-1"
    assert srv.train.shape[1] == srv.test.shape[1] == 19
    assert len(srv.train) + len(srv.test) == 12_960
    assert srv.labels.shape == (len(srv.test),)
    assert 0.013 <= srv.labels.mean() <= 0.103  # README: 1.3 %-10.2 % per server
    assert np.isfinite(srv.train).all()


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="omi-99"):
        load_server(tmp_path / "omi-99.csv.gz")


def test_point_adjust_fills_detected_segments_only() -> None:
    labels = np.array([0, 1, 1, 1, 0, 1, 1, 0], dtype=bool)
    pred = np.array([0, 0, 1, 0, 0, 0, 0, 1], dtype=bool)
    assert point_adjust(pred, labels).tolist() == [0, 1, 1, 1, 0, 0, 0, 1]


def test_threshold_comes_from_train_only() -> None:
    srv = load_server(ASD_DIR / "omi-4.csv.gz")
    det = fit(srv.train)
    train_scores = det.score(srv.train)
    assert np.mean(train_scores > det.threshold) == pytest.approx(0.01, abs=0.002)


def test_evaluator_scores_two_servers() -> None:
    res = evaluate_asd(ASD_DIR, servers=["omi-1", "omi-10"])
    assert [s["server"] for s in res["servers"]] == ["omi-1", "omi-10"]
    # measured: point-adjusted F1 0.944 (omi-1) and 0.884 (omi-10); point-wise F1 ~0.10 / 0.16
    assert res["servers"][0]["point_adjust"]["f1"] >= 0.93
    assert res["servers"][1]["point_adjust"]["f1"] >= 0.87
    for s in res["servers"]:
        assert s["point"]["f1"] <= s["point_adjust"]["f1"] <= s["best_f1_point_adjust"]["f1"] + 1e-9


def test_directory_comes_from_the_argument_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOAL_ASD_DIR", raising=False)
    with pytest.raises(ConfigError, match="SHOAL_ASD_DIR"):
        resolve_asd_dir(None)
    monkeypatch.setenv("SHOAL_ASD_DIR", str(ASD_DIR))
    assert resolve_asd_dir(None) == ASD_DIR
    assert resolve_asd_dir(Path("/elsewhere")) == Path("/elsewhere")
