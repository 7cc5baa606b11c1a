"""The drive-risk notebook runs headless on the synthetic SMART sample: a ranking and a calibration chart."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.notebooks import execute_notebook

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "drive_risk.ipynb"
SAMPLE = ROOT / "tests" / "data" / "drive_risk" / "hds_synthetic.parquet"


def test_drive_risk_notebook_executes(tmp_path: Path) -> None:
    outputs = execute_notebook(NOTEBOOK, tmp_path / "out.ipynb", {"SHOAL_SMART_DATA": str(SAMPLE)})
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 1  # the calibration chart
    stdout = "".join(
        "".join(o["text"]) for o in outputs if o.get("output_type") == "stream" and o["name"] == "stdout"
    )
    assert "split by drive" in stdout
    assert "  1 SYN" in stdout  # the ranking's first row is a synthetic drive
    assert "smart_" in stdout  # with the attributes that drove it
    assert "observed_rate" in stdout
