"""Logs searched while they land: JSON lines over HTTP (the receiver process) and from a Kafka topic
(the ingest pipeline against a real broker) into logs.lines, indexed by `shoal logs index --follow`
in its own process, which is killed with SIGKILL midway and restarted."""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow.compute as pc
import pytest

from harness import ManagedProcess
from harness.cli import invoke_shoal
from harness.ports import free_port, wait_for_port, wait_until
from shoal.config import init_project
from shoal.ingest import run_pipeline
from shoal.logs import LogIndex, build_query, ensure_tables
from shoal.logs.kafka import logs_pipeline
from shoal.logs.shipping import LogShipper, ShippingHandler
from shoal.logs.simulate import json_lines
from shoal.project import Project
from shoal.sources.kafka.producer import produce_events

pytestmark = pytest.mark.integration


def _line(message: str, service: str, *, ts: datetime | None = None, level: str = "error") -> bytes:
    doc = {
        "ts": (ts or datetime.now(UTC)).isoformat(),
        "service": service,
        "level": level,
        "message": message,
    }
    return json.dumps(doc).encode()


def _search(project: Path, *args: str) -> list[dict[str, Any]]:
    result = invoke_shoal(["logs", "search", *args, "--project", str(project), "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_logs_over_http_and_kafka_searched_while_ingesting(
    kafka_broker, kafka_topic, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    pdir = tmp_path / "proj"
    init_project(pdir)
    project = Project.load(pdir)
    lines_t = ensure_tables(project.lake)
    port = free_port()
    py = [sys.executable, "-m", "shoal", "logs"]
    receiver = ManagedProcess(
        "logs-receive",
        [*py, "receive", "-p", str(pdir), "--port", str(port), "--max-batch-delay", "0.2"],
        tmp_path / "receiver.log",
    )
    indexer = ManagedProcess(
        "logs-index",
        [*py, "index", "-p", str(pdir), "--follow", "--interval", "0.3"],
        tmp_path / "indexer.log",
    )
    stop = threading.Event()
    # whatever happens, the children and the pipeline thread stop with the test
    request.addfinalizer(lambda: (stop.set(), receiver.stop(), indexer.stop()))
    receiver.start()
    indexer.start()
    wait_for_port(port, timeout=30)
    url = f"http://127.0.0.1:{port}/v1/logs"

    # Kafka: the ingest pipeline in a thread, against the real broker
    topic = kafka_topic(partitions=2)
    spec = logs_pipeline([topic], kafka_broker.bootstrap)
    worker = threading.Thread(
        target=run_pipeline,
        args=(project, spec),
        kwargs={"stop_event": stop, "extra_client_config": kafka_broker.consumer_overrides},
        daemon=True,
    )
    worker.start()
    kafka_events = [(b"k%d" % i, v) for i, v in enumerate(json_lines(1500, seed=5))]
    kafka_events += [(b"bad-json", b'{"message": "unterminated'), (b"bad-nomsg", b'{"level": "info"}')]
    kafka_events.append((b"kraken", _line("kafka kraken sighted near the billing queue", "billing")))
    produce_events(kafka_broker.bootstrap, topic, kafka_events)

    def post(lines: list[bytes], seq: int) -> dict[str, Any]:
        resp = httpx.post(
            url,
            content=b"\n".join(lines),
            headers={"X-Shoal-Source": "web-1", "X-Shoal-Seq": str(seq)},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        return resp.json()

    old = datetime.now(UTC) - timedelta(days=2)
    first = post(
        [
            *json_lines(500, seed=6),
            _line("kraken kraken kraken: payment worker crashed", "billing"),
            _line("a long message that mentions a kraken once among many other words here", "billing"),
            _line("kraken in the api gateway", "api"),
            _line("kraken from two days ago", "billing", ts=old),
            b"{this is not json",
        ],
        seq=1,
    )
    assert (first["accepted"], first["dead_lettered"], first["duplicate"]) == (504, 1, False)
    assert first["errors"][0].startswith("line 505: ")
    assert post([_line("resent by mistake", "api")], seq=1)["duplicate"]  # exactly once per (source, seq)

    # a program's own logs through the shipping handler (a background thread posts them)
    shipper = LogShipper(f"http://127.0.0.1:{port}", max_delay_s=0.1)
    handler = ShippingHandler(shipper, service="shoal-test")
    app_log = logging.getLogger("test.logs.shipping")
    app_log.addHandler(handler)
    app_log.setLevel(logging.INFO)
    app_log.propagate = False
    app_log.warning("octopus shipped by a handler", extra={"pipeline": "tickets"})
    app_log.removeHandler(handler)
    handler.close()  # sends what is queued
    assert (shipper.sent, shipper.dropped) == (1, 0)

    expected_rows = 1500 + 1 + 504 + 1
    wait_until(lambda: lines_t.count() >= expected_rows, timeout=30, what="lines landing")
    index_path = pdir / ".shoal" / "logs-index"
    wait_until(
        lambda: len(_search(pdir, "kraken", "-n", "50")) == 5, timeout=30, what="first lines searchable"
    )

    wait_until(lambda: len(_search(pdir, "octopus")) == 1, timeout=30, what="shipped line searchable")
    shipped = _search(pdir, "octopus")
    assert [(h["service"], h["level"]) for h in shipped] == [("shoal-test", "warning")]
    assert json.loads(shipped[0]["attrs"])["pipeline"] == "tickets"
    hits = _search(pdir, "kraken", "-n", "50")
    assert hits[0]["message"] == "kraken kraken kraken: payment worker crashed"  # best match first
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    recent_billing = _search(pdir, "kraken", "--since", "1h", "--where", "service=billing", "-n", "50")
    assert {h["message"] for h in recent_billing} == {
        "kraken kraken kraken: payment worker crashed",
        "a long message that mentions a kraken once among many other words here",
        "kafka kraken sighted near the billing queue",
    }

    # the indexer is killed while lines keep landing (likely mid-update: it looks every 0.3 s);
    # the restarted indexer catches up without losing or duplicating a hit
    produce_events(kafka_broker.bootstrap, topic, [(b"late", v) for v in json_lines(700, seed=7)])
    post([*json_lines(300, seed=12), _line("squid number 2 escaped", "storage")], seq=2)
    indexer.kill()
    for seq in range(3, 5):
        post([*json_lines(300, seed=10 + seq), _line(f"squid number {seq} escaped", "storage")], seq=seq)
    expected_rows += 700 + 3 * 301
    wait_until(lambda: lines_t.count() >= expected_rows, timeout=30, what="late lines landing")
    seen_while_down = {h["message"] for h in _search(pdir, "squid")}
    assert seen_while_down <= {"squid number 2 escaped"}  # nothing after the kill is indexed
    indexer.start()
    wait_until(lambda: len(_search(pdir, "squid")) == 3, timeout=30, what="late lines searchable")

    stop.set()
    worker.join(30)
    receiver.stop()
    wait_until(
        lambda: (p := LogIndex(index_path).progress()) is not None and p.table_version == lines_t.version,
        timeout=30,
        what="index caught up",
    )
    indexer.stop()

    table = lines_t.to_arrow(columns=["id", "_kafka_topic"])
    assert table.num_rows == expected_rows
    assert pc.count(table["_kafka_topic"]).as_py() == 1500 + 1 + 700  # Kafka lines keep their origin
    index = LogIndex(index_path)
    indexed = [h.id for h in index.search(build_query("", limit=10_000))]
    assert len(indexed) == len(set(indexed)) == expected_rows
    assert set(indexed) == set(table["id"].to_pylist())

    dead = project.lake.table("logs.lines_dead_letters").to_arrow().to_pylist()
    by_value = {d["value"]: d for d in dead}
    assert len(dead) == 3
    assert by_value[b'{"message": "unterminated']["error_class"] == "JsonSyntaxError"
    assert "message" in by_value[b'{"level": "info"}']["error_message"]
    assert by_value[b"{this is not json"]["topic"] == "http:web-1"

    sql = invoke_shoal(
        [
            "logs",
            "sql",
            "-p",
            str(pdir),
            "--format",
            "json",
            "SELECT l.service, count(*) AS n "
            "FROM (SELECT unnest(logs_search('squid', 10), recursive := true)) h "
            "JOIN logs.lines l USING (id) GROUP BY 1",
        ]
    )
    assert sql.exit_code == 0, sql.output
    assert json.loads(sql.output) == [{"service": "storage", "n": 3}]
