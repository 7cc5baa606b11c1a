"""An embedded Kafka-protocol cluster for the demo: librdkafka's mock cluster.

librdkafka (inside confluent-kafka) can serve the real Kafka wire protocol on 127.0.0.1 from this
process. The demo uses it so it needs no broker installed; real deployments point pipelines at
their Kafka. It keeps only a few MB per partition, which suits a demo, not production.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from typing import TYPE_CHECKING, Any, Unpack

from confluent_kafka import Producer

if TYPE_CHECKING:
    from shoal.demo import DemoContext
    from shoal.lake import Lake, Table
    from shoal.usecases.registry import StreamSpec


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


# The mock cluster keeps only a few MB per partition and silently evicts the oldest data beyond
# that, so the demo never lets the un-ingested backlog grow past this many events.
MAX_BACKLOG = 60_000
CHUNK = 20_000
STALL_S = 180.0  # no progress this long while events are pending: the demo step fails


def stream_use_case(
    ctx: DemoContext, *, produce: Callable[..., int] | None = None, **spec: Unpack[StreamSpec]
) -> dict[str, Any]:
    """Install a pipeline in the demo project, stream ``events`` to ``topic`` on an embedded
    cluster while the pipeline ingests them (the backlog bounded by :data:`MAX_BACKLOG`), then
    refresh the use case's models. Raises DemoError unless every event landed exactly once.

    ``try_sql`` is a query the demo's summary suggests; ``produce`` defaults to
    :func:`shoal.sources.kafka.producer.produce_events` (tests pass a lossy one).

    The pipeline file reads ``${KAFKA_BROKERS}`` and ``${<topic_env>}``, set here for the run.
    """
    from shoal.demo import DemoError
    from shoal.ingest import load_pipeline, run_pipeline
    from shoal.models import ModelRunner
    from shoal.sources.kafka.producer import produce_events

    pipeline, proto, topic, topic_env = spec["pipeline"], spec["proto"], spec["topic"], spec["topic_env"]
    project = ctx.project
    (project.dir / "protos").mkdir(exist_ok=True)
    shutil.copy(proto, project.dir / "protos" / proto.name)
    project.pipelines_path.mkdir(exist_ok=True)
    (project.pipelines_path / f"{pipeline}.yaml").write_text(spec["pipeline_yaml"])

    with embedded_kafka() as bootstrap:
        previous = {k: os.environ.get(k) for k in ("KAFKA_BROKERS", topic_env)}
        os.environ["KAFKA_BROKERS"] = bootstrap
        os.environ[topic_env] = topic
        try:
            pipe = load_pipeline(project.pipeline_file(pipeline), project.dir)
            feeder = _Feeder(
                project.lake,
                (pipe.table, pipe.dlq_table),
                spec["events"],
                produce or produce_events,
                bootstrap,
                topic,
            )
            feeder.start()
            feeder.ready.wait()  # the topic exists before the worker subscribes to it
            try:
                stats = run_pipeline(project, pipeline, stop_event=feeder.done)
            finally:
                feeder.worker_exited.set()
                feeder.join()
        finally:
            for k, v in previous.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    if feeder.error is not None:
        raise DemoError(f"streaming {topic}: {feeder.error}")
    produced = feeder.produced
    landed = stats.committed_rows + stats.dead_lettered
    if landed != produced:
        raise DemoError(f"pipeline {pipeline} landed {landed:,} of {produced:,} events produced to {topic}")
    ctx.say(f"  streamed {produced:,} events through {topic} (embedded Kafka at {bootstrap})")
    ctx.say(f"  ingested {stats.committed_rows:,} events exactly once via pipeline {pipeline}")
    ctx.suggest_sql(spec["try_sql"])
    with ModelRunner(project.lake, spec["models"], con=project.connect()) as runner:
        results = runner.refresh()
    return {
        "produced": produced,
        "ingest": stats.as_dict(),
        "models": {r.model: r.rows_written for r in results},
    }


class _Feeder(threading.Thread):
    """Produces in chunks, keeping at most MAX_BACKLOG events not yet landed in the lake; sets
    ``done`` once everything produced has landed (the ingest worker then stops)."""

    def __init__(  # noqa: PLR0917 - internal
        self,
        lake: Lake,
        tables: tuple[str, str],
        events: Iterable[tuple[bytes, bytes]],
        produce: Callable[..., int],
        bootstrap: str,
        topic: str,
    ) -> None:
        super().__init__(name="demo-feeder", daemon=True)
        self.lake, self.tables, self.events = lake, tables, events
        self.produce, self.bootstrap, self.topic = produce, bootstrap, topic
        self.produced = 0
        self.error: str | None = None
        self.done = threading.Event()
        self.ready = threading.Event()
        self.worker_exited = threading.Event()
        self._handles: dict[str, Table] = {}

    def landed(self) -> int:
        total = 0
        for name in self.tables:
            table = self._handles.get(name) or self.lake.find(name)
            if table is not None:
                self._handles[name] = table
                total += table.count()
        return total

    def wait_for(self, target: int) -> bool:
        last, since = -1, time.monotonic()
        while not self.worker_exited.is_set():
            landed = self.landed()
            if landed >= target:
                return True
            if landed != last:
                last, since = landed, time.monotonic()
            elif time.monotonic() - since > STALL_S:
                self.error = f"ingestion stalled at {landed:,} of {self.produced:,} events"
                return False
            time.sleep(0.2)
        return False

    def run(self) -> None:
        try:
            it = iter(self.events)
            # the first chunk on its own: the topic exists before the worker subscribes
            first = self.produced = self.produce(self.bootstrap, self.topic, list(islice(it, CHUNK)))
            self.ready.set()
            # then one producer for the rest, paced by what has landed (a producer per chunk
            # spent more time connecting and flushing than sending)
            rest = self.produce(self.bootstrap, self.topic, self._paced(it))
            self.produced = first + rest
            self.wait_for(self.produced)
        except _WorkerGone:
            pass  # the worker stopped first: run_pipeline reports why
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.ready.set()
            self.done.set()

    def _paced(self, it: Iterator[tuple[bytes, bytes]]) -> Iterator[tuple[bytes, bytes]]:
        handed = self.produced
        for n, event in enumerate(it):
            if n % CHUNK == 0:
                self.produced = handed + n  # for progress and error messages
                if not self.wait_for(handed + n + CHUNK - MAX_BACKLOG):
                    raise _WorkerGone
            yield event


class _WorkerGone(Exception):
    """The ingest worker exited (or stalled) while events were still to be produced."""
