"""The leads example notebook runs headless: it builds its own lake from embedded SQLite stand-ins of
the CRM and the warehouse, draws the funnel and the scores, and the leads it prints are the
reference's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.notebooks import execute_notebook
from shoal.usecases.billing.demo_step import simulator
from shoal.usecases.leads import reference
from shoal.usecases.leads.schema import SPECS
from shoal.usecases.leads.simulator import LeadsSimulator, rows_as_dicts

pytestmark = pytest.mark.integration

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "leads.ipynb"


def test_leads_notebook_executes(tmp_path: Path) -> None:
    outputs = execute_notebook(NOTEBOOK, tmp_path / "out.ipynb", {"SHOAL_PROJECT": str(tmp_path / "leads")})
    assert len([o for o in outputs if "image/png" in o.get("data", {})]) >= 3  # funnel, cohorts, scores
    stdout = "".join(
        "".join(o["text"]) for o in outputs if o.get("output_type") == "stream" and o["name"] == "stdout"
    )
    data = LeadsSimulator(simulator(small=True), window_days=14).generate()
    crm = {t: rows_as_dicts(SPECS[t].column_names, r) for t, r in data.crm.items()}
    warehouse = {t: rows_as_dicts(SPECS[t].column_names, r) for t, r in data.warehouse.items()}
    want = reference.pql(crm, warehouse)
    top = re.search(r"top leads: (.+)", stdout)
    assert top, stdout
    assert top.group(1).split(", ") == [r["account_id"] for r in want[:10]]
    qualified = re.search(r"qualified leads: (\d+) of (\d+)", stdout)
    assert qualified, stdout
    assert (int(qualified.group(1)), int(qualified.group(2))) == (
        sum(r["qualified"] for r in want),
        len(want),
    )
    paid = re.search(r"paid users: (\d+) of (\d+)", stdout)
    assert paid, stdout
    funnel = reference.funnel(crm, warehouse)
    assert (int(paid.group(1)), int(paid.group(2))) == (sum(r["paid"] for r in funnel), 300)
