"""What ``shoal status``, ``GET /v1/status`` and ``GET /v1/pipelines`` tell about each pipeline.

* the table and dead-letter table, and how many dead letters there are (total and last hour);
* the committed offsets per topic partition, read from the table's ``txn`` keys
  (:func:`shoal.lake.progress.kafka_offset`) — the exactly-once positions, not Kafka's;
* when the broker answers within a short timeout, each partition's high watermark and the lag
  (high watermark minus the committed offset); otherwise ``broker.reachable`` is false and the
  error says why — the lake's side is still shown;
* throughput from the table's recent commits (rows and commits per second over a window).
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from shoal.errors import ShoalError
from shoal.ingest.spec import PipelineSpec
from shoal.lake import Lake
from shoal.lake.catalog import TableInfo
from shoal.lake.progress import kafka_offset

#: how many recent commits are read back for their ``txn`` actions
LINEAGE_COMMITS = 50

#: the window throughput is measured over
THROUGHPUT_WINDOW_S = 300.0
#: how long the broker gets to answer (metadata, then all watermarks) before it counts as down
BROKER_TIMEOUT_S = 2.0
#: after a broker failed to answer, it is asked again only this much later
BROKER_RETRY_S = 30.0
_DOWN: dict[str, tuple[float, str]] = {}


def recent_txns(lake: Lake, info: TableInfo) -> dict[str, dict[str, int]]:
    """The newest ``txn`` version of each app id, and the commit that wrote it."""
    fs, base = lake.location.filesystem()
    ns, tbl = info.name.split(".", 1)
    found: dict[str, dict[str, int]] = {}
    for version in range(info.version, max(-1, info.version - LINEAGE_COMMITS), -1):
        path = f"{base}/{ns}/{tbl}/_delta_log/{version:020d}.json"
        try:
            with fs.open_input_stream(path) as stream:
                text = stream.read().decode()
        except (FileNotFoundError, OSError):
            break  # cleaned up by log retention: older commits are gone
        for line in text.splitlines():
            if '"txn"' not in line:
                continue
            txn = json.loads(line).get("txn") or {}
            app = str(txn.get("appId", ""))
            if app and app not in found:
                found[app] = {"position": int(txn.get("version", 0)), "commit": version}
    return found


def _committed(
    lake: Lake, spec: PipelineSpec, partitions: set[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """Next offsets per (topic, partition) from the table's txn keys: the partitions the broker
    named plus those written by the table's recent commits, read from one snapshot."""
    if not lake.exists(spec.table):
        return {}
    prefix = f"shoal:{spec.name}:"
    seen = set(partitions)
    for app in recent_txns(lake, lake.describe(spec.table)):
        if app.startswith(prefix):
            topic, _, part = app.removeprefix(prefix).rpartition(":")
            if part.isdigit():
                seen.add((topic, int(part)))
    keys = {kafka_offset(spec.name, t, p): (t, p) for t, p in seen}
    _, versions = lake.table(spec.table).app_versions(list(keys))
    return {keys[k]: v for k, v in versions.items() if v is not None}


def _watermarks(spec: PipelineSpec, timeout_s: float) -> dict[tuple[str, int], int]:
    """High watermarks of the pipeline's topic partitions; raises when the broker does not answer."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    from shoal.sources.kafka.consumer import consumer_config

    conf = consumer_config(
        spec.brokers,
        "shoal-serve-probe",  # never joins: no subscribe, no commit
        spec.client,
        {
            "socket.timeout.ms": int(timeout_s * 1000),
            "enable.partition.eof": False,
            "statistics.interval.ms": 0,
            "log_level": 0,
        },
    )
    consumer = Consumer(conf)
    try:
        try:
            meta = consumer.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            raise BrokerUnreachable(f"broker {spec.brokers}: {exc.args[0]}") from exc
        if spec.topic_pattern:
            rx = re.compile(spec.topic_pattern)
            topics = [t for t in meta.topics if rx.match(t)]
        else:
            topics = [t for t in spec.topics if t in meta.topics]
        out: dict[tuple[str, int], int] = {}
        for topic in sorted(topics):
            for part in sorted(meta.topics[topic].partitions):
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, part), timeout=timeout_s)
                out[(topic, part)] = int(high)
        return out
    except KafkaException as exc:
        raise BrokerUnreachable(f"broker {spec.brokers}: {exc.args[0]}") from exc
    finally:
        consumer.close()


class BrokerUnreachable(ShoalError):
    """The broker did not answer within the probe's timeout."""


def _dead_letters(lake: Lake, table: str, now: datetime) -> dict[str, Any]:
    """Letters in all, failed in the last hour, and pending (not replayed by ``shoal dlq replay``:
    replayed letters are marked, not deleted)."""
    if not lake.exists(table):
        return {"table": table, "total": 0, "last_hour": 0, "pending": 0}
    dataset = lake.table(table).delta().to_pyarrow_dataset()
    total = dataset.count_rows()
    last_hour = 0
    if "failed_at" in dataset.schema.names:
        since = pa.scalar(now - timedelta(hours=1), dataset.schema.field("failed_at").type)
        last_hour = dataset.count_rows(filter=pc.field("failed_at") >= since)
    pending = total
    if "replayed_at" in dataset.schema.names:
        pending = dataset.count_rows(filter=pc.field("replayed_at").is_null())
    return {"table": table, "total": int(total), "last_hour": int(last_hour), "pending": int(pending)}


def _throughput(lake: Lake, table: str, now: datetime, window_s: float) -> dict[str, Any]:
    out: dict[str, Any] = {"window_s": window_s, "commits": 0, "rows": 0, "rows_per_s": 0.0}
    if not lake.exists(table):
        return out
    since_ms = (now.timestamp() - window_s) * 1000
    for commit in lake.table(table).history(200):
        if float(commit.get("timestamp") or 0) < since_ms:
            break
        metrics = commit.get("operationMetrics") or {}
        out["commits"] += 1
        out["rows"] += int(metrics.get("num_added_rows") or 0)
    out["rows_per_s"] = round(out["rows"] / window_s, 3)
    out["commits_per_min"] = round(out["commits"] / window_s * 60, 3)
    return out


def pipeline_status(
    lake: Lake, spec: PipelineSpec, *, broker_timeout_s: float = BROKER_TIMEOUT_S, now: datetime | None = None
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    broker: dict[str, Any] = {"brokers": spec.brokers, "reachable": False, "error": None}
    highs: dict[tuple[str, int], int] = {}
    down = _DOWN.get(spec.brokers)
    if down is not None and down[0] > time.monotonic():
        broker["error"] = down[1]
    else:
        try:
            highs = _watermarks(spec, broker_timeout_s)
            broker["reachable"] = True
            _DOWN.pop(spec.brokers, None)
        except BrokerUnreachable as exc:
            broker["error"] = str(exc)
            # a dashboard polls every few seconds: do not wait on a dead broker each time
            _DOWN[spec.brokers] = (time.monotonic() + BROKER_RETRY_S, str(exc))
    committed = _committed(lake, spec, set(highs))
    partitions = []
    for topic, part in sorted(set(committed) | set(highs)):
        next_offset = committed.get((topic, part))
        high = highs.get((topic, part))
        lag = None
        if high is not None:
            lag = max(0, high - (next_offset or 0))
        partitions.append(
            {"topic": topic, "partition": part, "committed": next_offset, "high_watermark": high, "lag": lag}
        )
    lags = [p["lag"] for p in partitions if p["lag"] is not None]
    return {
        "name": spec.name,
        "description": spec.description,
        "topics": spec.subscription,
        "table": spec.table,
        "group_id": spec.group,
        "broker": broker,
        "partitions": partitions,
        "lag": sum(lags) if broker["reachable"] else None,
        "dead_letters": _dead_letters(lake, spec.dlq_table, now),
        "throughput": _throughput(lake, spec.table, now, THROUGHPUT_WINDOW_S),
        "error": None,
    }


__all__ = ["BrokerUnreachable", "pipeline_status", "recent_txns"]
