"""kill -9 of the revenue watcher at random moments: after every restart the models converge, and
revenue equals the Decimal reference to the cent (exactly-once across the chain's commits)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shoal.config import init_project
from shoal.lake import Lake
from shoal.models import ModelRunner
from shoal.project import Project
from shoal.usecases.billing import models, reference
from shoal.usecases.billing.simulator import BillingSimulator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))  # the ingest-shaped table
from test_billing_models import keyed, to_arrow

pytestmark = pytest.mark.integration

FAST_PATH = ("billing.charges_hourly", "billing.invoice_lines", "billing.revenue_hourly", "billing.run_rate")
KILLS = 10


def _behind(lake: Lake) -> dict[str, bool]:
    """Per model of the fast path: whether it has not consumed its upstream's latest version."""
    out = {}
    for m in models():
        if m.name in FAST_PATH:
            (up, *_) = m.upstream
            out[m.name] = lake.table(m.name).app_version(f"model:{up}") != lake.table(up).version
    return out


def test_revenue_is_exact_after_kill_9_of_the_watcher_at_random_moments(tmp_path: Path) -> None:
    proj_dir = tmp_path / "proj"
    init_project(proj_dir, "crash")
    cfg = proj_dir / "shoal.yaml"
    cfg.write_text(cfg.read_text().replace("models: []", "models: [shoal.usecases.billing.models]"))
    lake = Project.load(proj_dir).lake
    # across a month boundary (caps reset), with late and duplicated events
    sim = BillingSimulator(3, datetime(2026, 1, 30, tzinfo=UTC), 3, 120, late_share=0.1, dup_share=0.02)
    events = list(sim.events())
    table = to_arrow(events)
    batches = 2 * KILLS + 1
    cuts = [len(events) * i // batches for i in range(batches + 1)]
    source = lake.create_table("billing.usage_events", table.schema)
    landed = 0

    def land() -> None:
        nonlocal landed
        source.append(table.slice(cuts[landed], cuts[landed + 1] - cuts[landed]))
        landed += 1

    land()
    rng = random.Random(18)
    argv = [sys.executable, "-m", "shoal", "refresh", "billing.charges_hourly", "billing.revenue_hourly"]
    argv += ["billing.run_rate", "--watch", "--interval", "0.1", "-p", str(proj_dir), "--format", "json"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    mid_chain = 0
    for _ in range(KILLS):
        land()  # what the watcher finds on start (its first cycle catches up)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            first: dict[str, Any] = json.loads(line)
            assert {m["model"] for m in first["models"]} == set(FAST_PATH)
            land()  # more events land while it runs; it dies somewhere in the cycle they start
            time.sleep(rng.uniform(0.0, 1.2))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        behind = _behind(lake)
        # charges_hourly moved on and a model reading it did not: killed between the chain's commits
        mid_chain += not behind["billing.charges_hourly"] and any(behind.values())
    assert landed == batches
    with ModelRunner(lake, [m for m in models() if m.name in FAST_PATH]) as runner:
        runner.refresh()
        ref = reference.compute(events)
        for name in FAST_PATH:
            spec = next(m for m in models() if m.name == name)
            got = runner.con.query_arrow(f"SELECT * FROM {name}").to_pylist()
            want = getattr(ref, name.split(".", 1)[1])
            assert keyed(got, spec.unique_key) == keyed(want, spec.unique_key), (name, mid_chain)
