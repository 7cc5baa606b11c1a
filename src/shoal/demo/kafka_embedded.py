"""An embedded Kafka-protocol cluster for the demo: librdkafka's mock cluster.

librdkafka (inside confluent-kafka) can serve the real Kafka wire protocol on 127.0.0.1 from this
process. The demo uses it so it needs no broker installed; real deployments point pipelines at
their Kafka. It keeps only a few MB per partition, which suits a demo, not production.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confluent_kafka import Producer

if TYPE_CHECKING:
    from shoal.demo import DemoContext
    from shoal.models import Model


@contextmanager
def embedded_kafka() -> Iterator[str]:
    """Yield the bootstrap address of an in-process mock cluster, alive until the block exits."""
    holder = Producer({"test.mock.num.brokers": 1, "bootstrap.servers": "embedded", "log_level": 3})
    try:
        brokers = holder.list_topics(timeout=10).brokers.values()
        broker = next(iter(brokers))
        yield f"{broker.host}:{broker.port}"
    finally:
        holder.flush(5)
        del holder


def stream_use_case(
    ctx: DemoContext,
    *,
    pipeline: str,
    pipeline_yaml: str,
    proto: Path,
    topic: str,
    topic_env: str,
    events: Iterable[tuple[bytes, bytes]],
    produce: Callable[..., int],
    models: Sequence[Model],
) -> dict[str, Any]:
    """Install a pipeline in the demo project, produce ``events`` to ``topic`` on an embedded
    cluster, drain the pipeline into the lake, then refresh the use case's models.

    The pipeline file reads ``${KAFKA_BROKERS}`` and ``${<topic_env>}``, set here for the run.
    """
    from shoal.ingest import run_pipeline
    from shoal.models import ModelRunner

    project = ctx.project
    (project.dir / "protos").mkdir(exist_ok=True)
    shutil.copy(proto, project.dir / "protos" / proto.name)
    project.pipelines_path.mkdir(exist_ok=True)
    (project.pipelines_path / f"{pipeline}.yaml").write_text(pipeline_yaml)

    with embedded_kafka() as bootstrap:
        previous = {k: os.environ.get(k) for k in ("KAFKA_BROKERS", topic_env)}
        os.environ["KAFKA_BROKERS"] = bootstrap
        os.environ[topic_env] = topic
        try:
            produced = produce(bootstrap, topic, events)
            ctx.say(f"  produced {produced:,} events to {topic} (embedded Kafka at {bootstrap})")
            stats = run_pipeline(project, pipeline, until_drained=True, drain_timeout_s=180)
        finally:
            for k, v in previous.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    ctx.say(f"  ingested {stats.committed_rows:,} events exactly once via pipeline {pipeline}")
    with ModelRunner(project.lake, models) as runner:
        results = runner.refresh()
    return {
        "produced": produced,
        "ingest": stats.as_dict(),
        "models": {r.model: r.rows_written for r in results},
    }
