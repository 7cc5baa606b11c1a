"""``shoal infra evaluate --asd``: three detectors on the same ASD servers, in one run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from shoal.usecases.infra import asd_compare
from shoal.usecases.infra.asd import Server
from shoal.usecases.infra.cli import app as infra_app

ASD_DIR = Path(__file__).resolve().parents[1] / "data" / "asd"


def test_evaluate_reports_three_detectors_with_every_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    servers = ["omi-1", "omi-10"]
    real = asd_compare.compare_on_asd
    # two of the twelve servers keep the test short; the CLI path is otherwise the real one
    monkeypatch.setattr(asd_compare, "compare_on_asd", lambda directory: real(directory, servers=servers))
    res = CliRunner().invoke(infra_app, ["evaluate", "--asd", "--asd-dir", str(ASD_DIR), "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout[res.stdout.index("{") :])
    assert out["protocol"] == "asd-stream-v1"
    assert [s["server"] for s in out["servers"]] == servers
    overall = out["overall"]
    assert set(overall) == {"streaming", "window", "fitted", "rolling_z"}
    for rep in overall.values():
        assert set(rep) >= {"point", "event", "early_detection_score", "point_adjusted"}
        assert rep["events"] == 15
        assert rep["point"]["f1"] <= rep["point_adjusted"]["f1"]
        assert 0 <= rep["early_detection_score"] <= 100
    # measured on omi-1 and omi-10: the streaming detector raises 25 alarms (11 false), the window one
    # 40 (24), the fitted one 49 (35); event F1 0.68 / 0.53 / 0.46; early-detection 76.8 / 62.5 / 51.1
    s, w, f = overall["streaming"], overall["window"], overall["fitted"]
    for better, worse in ((s, w), (w, f)):
        assert better["false_alarms"] < worse["false_alarms"]
        assert better["event"]["f1"] > worse["event"]["f1"]
        assert better["early_detection_score"] > worse["early_detection_score"]


def test_a_server_alarms_when_two_metrics_agree_not_on_one() -> None:
    rng = np.random.default_rng(3)
    n_train, n_test = 800, 400
    values = rng.normal(10.0, 1.0, size=(n_train + n_test, 4))
    lone = n_train + 100  # one metric jumps: no alarm (ASD_AGREE = 2)
    values[lone : lone + 6, 0] += 12.0
    both = n_train + 300  # two metrics jump together: an alarm within a step of the start
    values[both : both + 6, 1:3] += 12.0
    srv = Server("s", values[:n_train], values[n_train:], np.zeros(n_test, dtype=bool))
    score, hot, alarm = asd_compare.stream_scores([srv], asd_compare.ASD_STREAM, agree=2)["s"]
    assert ((score >= 0) & (score <= 1)).all()
    assert not hot[lone : lone + 6].any()
    onsets = [i for i in np.flatnonzero(alarm) if i >= n_train]
    assert len(onsets) == 1  # one alarm for the episode
    assert both <= onsets[0] <= both + 1
