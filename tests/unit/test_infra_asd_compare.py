"""``shoal infra evaluate --asd``: three detectors on the same ASD servers, in one run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoal.usecases.infra import asd_compare
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
    assert set(overall) == {"streaming", "fitted", "rolling_z"}
    for rep in overall.values():
        assert set(rep) >= {"point", "event", "early_detection_score", "point_adjusted"}
        assert rep["events"] == 15
        assert rep["point"]["f1"] <= rep["point_adjusted"]["f1"]
        assert 0 <= rep["early_detection_score"] <= 100
    # measured on omi-1 and omi-10: the streaming detector raises 33 alarms (20 false) against the
    # fitted detector's 49 (35 false); event F1 0.51 against 0.46; early-detection 60.3 against 51.1
    s, f = overall["streaming"], overall["fitted"]
    assert s["false_alarms"] < f["false_alarms"]
    assert s["event"]["f1"] > f["event"]["f1"]
    assert s["early_detection_score"] > f["early_detection_score"]
