from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.compute as pc
import pytest
import yaml
from prom_servers import FIXTURES, TEXT, exposition_server

from shoal.lake import Lake
from shoal.sources.prometheus import MetricsWriter, ScrapeConfig, Scraper, TargetsFile, series_id

pytestmark = pytest.mark.integration

OM_BODY = b'# TYPE jobs counter\njobs_total{queue="a"} 7 1700000000.250\n# EOF\n'


def _write_targets(path: Path, port: int, extra: list[dict[str, object]] | None = None) -> None:
    groups: list[dict[str, object]] = [
        {
            "targets": [f"127.0.0.1:{port}"],
            "labels": {"__metrics_path__": "/node", "env": "test", "instance": "node"},
        },
        {"targets": [f"127.0.0.1:{port}"], "labels": {"__metrics_path__": "/alltypes", "instance": "prom"}},
        {"targets": [f"127.0.0.1:{port}"], "labels": {"__metrics_path__": "/om", "instance": "om"}},
        {"targets": [f"127.0.0.1:{port}"], "labels": {"__metrics_path__": "/bad", "instance": "bad"}},
        {"targets": [f"127.0.0.1:{port}"], "labels": {"__metrics_path__": "/slow", "instance": "slow"}},
        {"targets": [f"127.0.0.1:{port}"], "labels": {"__metrics_path__": "/missing", "instance": "404"}},
        {"targets": ["127.0.0.1:1"], "labels": {"instance": "down"}},
        *(extra or []),
    ]
    path.write_text(yaml.safe_dump(groups))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_scrape_round_to_lake(tmp_path: Path) -> None:
    routes = {
        "/node": ((FIXTURES / "node_exporter_e2e-output.txt").read_bytes(), TEXT),
        "/alltypes": ((FIXTURES / "prometheus_alltypes.237mfs.prom.txt").read_bytes(), TEXT),
        "/om": (OM_BODY, "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "/bad": (b"this is { not prometheus\n", TEXT),
        "/t": (b"extra_metric 1\n", TEXT),
    }
    lake = Lake(str(tmp_path / "lake"))
    targets_file = tmp_path / "targets.yaml"
    with exposition_server(routes, slow_paths=frozenset({"/slow"})) as port:
        _write_targets(targets_file, port)
        scraper = Scraper(
            TargetsFile(targets_file, default_job="node"),
            MetricsWriter(lake),
            ScrapeConfig(job="node", jitter_s=0, timeout_s=1.0, concurrency=4),
        )
        round_ms = 1_700_000_100_000
        result = asyncio.run(scraper.scrape_round(round_ms))
        assert result.write is not None
        assert not result.write.skipped
        health = {r["instance"]: r for r in lake.table("metrics.targets").to_arrow().to_pylist()}
        assert {k for k, v in health.items() if v["up"]} == {"node", "prom", "om"}
        assert "malformed exposition" in health["bad"]["error"]
        assert "timeout" in health["slow"]["error"]
        assert "HTTP 404" in health["404"]["error"]
        assert "ConnectError" in health["down"]["error"]
        assert health["node"]["samples"] == 3027
        assert health["prom"]["samples"] == 1857

        samples = lake.table("metrics.samples")
        assert samples.count() == 3027 + 1857 + 1 + 3 * 7  # + up/scrape_duration/scrape_samples per target
        assert samples.app_version("scrape:node") == round_ms
        # target labels + job/instance on every series; exposition timestamps honoured
        sid = series_id(
            "node_arp_entries", {"device": "eth0", "env": "test", "instance": "node", "job": "node"}
        )
        row = samples.to_arrow(filter=f"series_id = {sid}").to_pylist()
        assert [r["value"] for r in row] == [3.0]
        om = series_id("jobs_total", {"queue": "a", "instance": "om", "job": "node"})
        [om_row] = samples.to_arrow(filter=f"series_id = {om}").to_pylist()
        assert om_row["ts"] == datetime(2023, 11, 14, 22, 13, 20, 250000, tzinfo=UTC)
        up = samples.to_arrow(
            filter=f"series_id = {series_id('up', {'instance': 'down', 'job': 'node'})}"
        ).to_pylist()
        assert [r["value"] for r in up] == [0.0]
        series = lake.table("metrics.series")
        assert (
            series.count() == pc.count_distinct(samples.to_arrow(columns=["series_id"])["series_id"]).as_py()
        )

        # the same round again (a retry) writes nothing
        again = asyncio.run(scraper.scrape_round(round_ms))
        assert again.write is not None
        assert again.write.skipped
        assert samples.count() == 3027 + 1857 + 1 + 21

        # targets file changes while running: a new target shows up in the next round
        _write_targets(
            targets_file, port, [{"targets": [f"127.0.0.1:{port}"], "labels": {"__metrics_path__": "/t/1"}}]
        )
        nxt = asyncio.run(scraper.scrape_round(round_ms + 300_000))
        assert len(nxt.targets) == 8
        assert lake.table("metrics.targets").count() == 15


def test_run_loop_stops(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    with exposition_server({"/t": (b"a 1\n", TEXT)}) as port:
        targets = tmp_path / "t.yaml"
        targets.write_text(
            yaml.safe_dump([{"targets": [f"127.0.0.1:{port}"], "labels": {"__metrics_path__": "/t/0"}}])
        )
        scraper = Scraper(
            TargetsFile(targets, default_job="j"),
            MetricsWriter(lake),
            ScrapeConfig(interval_s=0.5, jitter_s=0),
        )
        rounds: list[int] = []
        start = time.time()
        asyncio.run(scraper.run(max_rounds=2, on_round=lambda r: rounds.append(r.round_ms)))
        assert len(rounds) == 2
        assert rounds[1] - rounds[0] >= 500
        assert rounds[0] % 500 == 0
        assert time.time() - start < 5
        assert lake.table("metrics.targets").count() == 2
