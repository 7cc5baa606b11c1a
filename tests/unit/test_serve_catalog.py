"""Personal-data marks in the catalog, and a served engine that follows a changed mark."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pytest

from shoal.errors import ConfigError
from shoal.lake import Lake
from shoal.serve import executor as executor_module
from shoal.serve.state import ServeState
from shoal.serve.testing import sample_project


def test_pii_marks_live_in_the_sidecar(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    schema = pa.schema([("id", pa.int64()), ("email", pa.string()), ("ip", pa.string())])
    lake.create_table("crm.people", schema, pii=["email"])
    assert lake.pii_columns("crm.people") == ["email"]
    assert lake.describe("crm.people").pii == ("email",)
    assert lake.describe("crm.people").as_dict()["pii"] == ["email"]
    lake.mark_pii("crm.people", ["email", "ip"])
    assert lake.pii_columns("crm.people") == ["email", "ip"]
    with pytest.raises(ConfigError, match="not in the schema"):
        lake.mark_pii("crm.people", ["phone"])
    with pytest.raises(ConfigError, match="not in the schema"):
        lake.create_table("crm.other", schema, pii=["phone"])


def test_a_new_mark_reaches_the_served_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executor_module, "REFRESH_EVERY_S", 0.0)
    served = sample_project(tmp_path / "p", customers=3, tickets=3)
    with ServeState(served.project) as state:
        token = state.tokens.authenticate(served.support_reader)

        def team() -> list[object]:
            with state.executor.query(token, "select team from support.tickets order by id") as r:
                return [row["team"] for b in r.batches() for row in b.to_pylist()]

        assert team() == ["amer", "emea", "amer"]
        served.project.lake.mark_pii("support.tickets", ["team"])
        time.sleep(0.01)
        masked = team()
        assert all(str(v).startswith("pii_") for v in masked)
        assert masked[0] == masked[2]
        assert masked[0] != masked[1]
