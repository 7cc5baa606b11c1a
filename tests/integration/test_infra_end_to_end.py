"""A few days of a small fleet's history into a lake in tmp_path, detection over the lake, evaluation;
and the exporter's targets read back with prometheus_client's parser."""

from __future__ import annotations

import json
import socket
from datetime import date
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shoal.lake import Lake
from shoal.query.engine import connect_lake
from shoal.sources.prometheus.series import series_id
from shoal.usecases.infra.anomalies import ANOMALIES_BATCH, detect_all, write_anomalies
from shoal.usecases.infra.evaluate import score_events
from shoal.usecases.infra.exporter import ExporterServer, FleetExporter
from shoal.usecases.infra.faults import STEP_S, STEPS_PER_DAY
from shoal.usecases.infra.history import FAULT_LABELS, Fleet, write_history
from shoal.usecases.infra.power import peak_vs_average
from shoal.usecases.infra.topology import TopologyConfig

pytestmark = pytest.mark.integration

CFG = TopologyConfig(
    seed=202,
    datacenters_per_region=1,
    podlets_per_datacenter=2,
    racks_per_podlet=4,
    hypervisors_per_rack=8,
    disks_per_hypervisor=2,
)


def test_history_into_lake_then_detect(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    fleet = Fleet.build(CFG, start=date(2026, 1, 5), days=3, seed=202)
    res = write_history(lake, fleet)
    assert res.days_written == 3
    assert lake.table("metrics.samples").count() == res.samples
    # re-running skips the days already committed (app transaction per day)
    again = write_history(lake, fleet)
    assert (again.days_written, again.days_skipped, again.samples) == (0, 3, 0)
    assert lake.table("metrics.samples").count() == res.samples

    with connect_lake(lake) as con:
        found = detect_all(con)
        devices = peak_vs_average(con, "device")
    assert devices.num_rows == fleet.topology.n_hosts
    write_anomalies(lake, found)
    write_anomalies(lake, found)  # idempotent upsert
    stored = lake.table(ANOMALIES_BATCH).to_arrow()
    assert stored.num_rows == found.num_rows
    score = score_events(stored, lake.table(FAULT_LABELS).to_arrow())
    # same fleet as tests/unit/test_infra_detect.py: measured F1 0.9565 there, from Arrow views
    assert score.f1 >= 0.95, score.as_dict()


def test_exporter_serves_scrapeable_targets(tmp_path: Path) -> None:
    fleet = Fleet.build(CFG, start=date(2026, 1, 5), days=2, seed=202)
    now_step = (fleet.start_day + 1) * STEPS_PER_DAY + 100
    exporter = FleetExporter(fleet.simulator, clock=lambda: now_step * STEP_S + 12.0)
    with ExporterServer(exporter) as server:
        sd = server.write_file_sd(tmp_path / "targets.json")
        groups = json.loads(sd.read_text())
        assert len(groups) == fleet.topology.n_pdus + fleet.topology.n_hosts
        pdu = fleet.topology.pdu_id[0]
        group = next(g for g in groups if g["labels"]["instance"] == pdu)
        url = f"http://{group['targets'][0]}{group['labels']['__metrics_path__']}"
        resp = httpx.get(url, timeout=5)
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/plain")
        fams = {f.name: f for f in text_string_to_metric_families(resp.text)}
        assert set(fams) == {"pdu_outlet_power_watts", "pdu_phase_current_amperes", "pdu_phase_voltage_volts"}
        outlets = fams["pdu_outlet_power_watts"].samples
        assert len(outlets) == CFG.hypervisors_per_rack
        # the value is the simulator's value at this step, and the labels give history's series id
        first = outlets[0]
        labels = {**first.labels, "job": group["labels"]["job"], "instance": pdu}
        assert series_id("pdu_outlet_power_watts", labels) == fleet.families[0].series_ids[0]
        expected = fleet.simulator.at(now_step).outlet_power_w[0, 0]
        assert first.value == pytest.approx(expected)
        host = fleet.topology.host_id[0]
        body = httpx.get(f"{server.url}/targets/{host}/metrics", timeout=5).text
        assert "smart_reallocated_sectors{" in body
        assert httpx.get(f"{server.url}/targets/nope/metrics", timeout=5).status_code == 404


def test_cli_simulate_detect_evaluate(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from shoal.config import init_project
    from shoal.usecases.infra.cli import app as infra

    init_project(tmp_path)
    app = typer.Typer()
    app.add_typer(infra, name="infra")
    runner = CliRunner()
    p = str(tmp_path)
    sim = runner.invoke(
        app,
        [
            "infra",
            "simulate",
            "-p",
            p,
            "--days",
            "2",
            "--podlets",
            "1",
            "--racks",
            "3",
            "--hosts",
            "6",
            "--format",
            "json",
        ],
    )
    assert sim.exit_code == 0, sim.output
    assert json.loads(sim.output)["days_written"] == 2
    det = runner.invoke(app, ["infra", "detect", "-p", p, "--format", "json"])
    assert det.exit_code == 0, det.output
    assert json.loads(det.output)["anomalies"] > 0
    # detect writes the batch table; infra.anomalies is the runner's model (ADR 0045)
    ev = runner.invoke(
        app, ["infra", "evaluate", "-p", p, "--table", "infra.anomalies_batch", "--format", "json"]
    )
    assert ev.exit_code == 0, ev.output
    assert json.loads(ev.output)["f1"] >= 0.9  # measured 0.9565 for this fleet


def test_exporter_accepts_a_scrapers_concurrent_connections() -> None:
    # A scraper opens `concurrency` (default 64) connections at once. While the server is not
    # accepting, the kernel must still complete them all: with the stdlib backlog of 5 it drops the
    # SYNs beyond it and every dropped connection waits for a 1 s+ retransmit.
    fleet = Fleet.build(CFG, start=date(2026, 1, 5), days=1, seed=202)
    server = ExporterServer(FleetExporter(fleet.simulator))  # not started: nothing accepts
    host, port = server.httpd.server_address[:2]
    socks: list[socket.socket] = []
    try:
        for _ in range(100):
            s = socket.create_connection((str(host), int(port)), timeout=5)
            socks.append(s)
        assert len(socks) == 100
    finally:
        for s in socks:
            s.close()
        server.httpd.server_close()
