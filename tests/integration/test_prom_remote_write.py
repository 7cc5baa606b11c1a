from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import cramjam
import httpx
import pytest
from prom_servers import uvicorn_server

from shoal.lake import Lake
from shoal.sources.prometheus import (
    MetricsWriter,
    ReceiverConfig,
    create_app,
    series_id,
    write_request_class,
)
from shoal.usecases.metrics.receiver import RemoteWriteReceiver

pytestmark = pytest.mark.integration

HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


def body(n_series: int, ts: list[int], base: float = 0.0) -> bytes:
    req: Any = write_request_class()()
    for i in range(n_series):
        s = req.timeseries.add()
        s.labels.add(name="__name__", value="node_load1")
        s.labels.add(name="instance", value=f"host{i}:9100")
        s.labels.add(name="job", value="node")
        for t in ts:
            s.samples.add(timestamp=t, value=base + i + t / 1e6)
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))


def test_remote_write_commits_before_2xx(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    receiver = RemoteWriteReceiver(
        MetricsWriter(lake), ReceiverConfig(max_batch_samples=1000, max_batch_delay_s=0.3)
    )
    with uvicorn_server(create_app(receiver)) as port:
        url = f"http://127.0.0.1:{port}/api/v1/write"
        r = httpx.post(url, content=body(10, [1_700_000_000_000, 1_700_000_015_000]), headers=HEADERS)
        assert r.status_code == 204
        # committed before the answer: visible right away
        samples = lake.table("metrics.samples")
        assert samples.count() == 20
        sid = series_id("node_load1", {"instance": "host3:9100", "job": "node"})
        rows = samples.to_arrow(filter=f"series_id = {sid}").to_pylist()
        assert sorted(r["value"] for r in rows) == [3 + 1_700_000.0, 3 + 1_700_000.015]
        assert lake.table("metrics.series").count() == 10

        # concurrent requests are batched into few commits; duplicates (series_id, ts) collapse
        async def many() -> list[int]:
            async with httpx.AsyncClient() as c:
                rs = await asyncio.gather(
                    *(
                        c.post(url, content=body(10, [1_700_000_030_000 + 1000 * k]), headers=HEADERS)
                        for k in range(8)
                    )
                )
            return [x.status_code for x in rs]

        v_before = samples.version
        assert asyncio.run(many()) == [204] * 8
        assert samples.count() == 20 + 10 * 8
        assert samples.version - v_before < 8  # batched: fewer commits than requests
        # duplicate (series_id, ts) within one write collapse to one row
        assert httpx.post(url, content=body(10, [1_800_000_000_000] * 3), headers=HEADERS).status_code == 204
        assert samples.count() == 20 + 10 * 8 + 10

        bad = httpx.post(url, content=b"definitely not snappy", headers=HEADERS)
        assert bad.status_code == 400
        assert "snappy" in bad.text
        assert bad.text.count("\n") == 1
        assert httpx.get(f"http://127.0.0.1:{port}/-/healthy").status_code == 200


def test_remote_write_lake_failure_is_5xx(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    lake = Lake(str(root))
    receiver = RemoteWriteReceiver(
        MetricsWriter(lake), ReceiverConfig(max_batch_delay_s=0.05, write_attempts=1)
    )
    with uvicorn_server(create_app(receiver)) as port:
        url = f"http://127.0.0.1:{port}/api/v1/write"
        assert httpx.post(url, content=body(1, [1000]), headers=HEADERS).status_code == 204
        # break the samples table's Delta log: the write fails, so Prometheus must be told to retry
        log = root / "metrics" / "samples" / "_delta_log"
        for f in log.glob("*.json"):
            f.write_text("{corrupt")
        r = httpx.post(url, content=body(1, [2000]), headers=HEADERS)
        assert r.status_code >= 500
        assert "write to lake failed" in r.text
