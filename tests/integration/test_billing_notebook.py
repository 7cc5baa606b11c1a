"""The billing example notebook runs headless: it builds its own billing lake on embedded defaults
(in-process Kafka, local lake), draws its charts, and its printed total is the reference's."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

import shoal
from harness.notebooks import execute_notebook
from shoal.usecases.billing import reference
from shoal.usecases.billing.events import BillingEvent

pytestmark = pytest.mark.integration

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "billing.ipynb"


def test_billing_notebook_executes(tmp_path: Path) -> None:
    project_dir = tmp_path / "billing"  # absent: the notebook builds the lake there
    out = tmp_path / "out.ipynb"
    outputs = execute_notebook(NOTEBOOK, out, {"SHOAL_PROJECT": str(project_dir)})
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) >= 3  # daily revenue by product, run rate, storage run rate by compute spend
    stdout = "".join(
        "".join(o["text"]) for o in outputs if o.get("output_type") == "stream" and o["name"] == "stdout"
    )
    assert "events ingested" in stdout  # it built the lake itself

    # The printed total is the exact Decimal of the independent reference over the raw events landed.
    match = re.search(r"total revenue \(USD, exact\): ([0-9.]+)", stdout)
    assert match, stdout
    printed = Decimal(match.group(1))
    con = shoal.connect(project_dir)
    try:
        raw = con.query_arrow(
            f"SELECT {', '.join(BillingEvent._fields)} FROM billing.usage_events"
        ).to_pylist()
        in_lake = con.sql("SELECT sum(revenue) FROM billing.revenue_daily").fetchone()
    finally:
        con.close()
    assert in_lake is not None
    assert printed == in_lake[0]
    want = sum(
        (r["revenue"] for r in reference.compute(BillingEvent(**r) for r in raw).revenue_daily), Decimal(0)
    )
    assert printed == want > 0
