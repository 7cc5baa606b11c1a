"""A Kafka consumer whose positions come from the lake, not from Kafka.

Offsets are managed by the caller: on every assignment it is asked where each partition starts
(the lake table's ``txn`` version), and after a lake commit it commits those offsets back to Kafka
asynchronously — only so lag shows in standard tools; Kafka's committed offsets are never read.

Rebalancing is *eager* (``roundrobin``): on a rebalance every partition is revoked (the caller
flushes what it buffered) and the new assignment is positioned from the table. Eager keeps the
offset handover trivially correct and works with every broker we test against (noida-db, tansu);
``cooperative-sticky`` may be set in ``client`` and is handled with incremental (un)assign.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, Message
from confluent_kafka import KafkaError as CKError
from confluent_kafka import TopicPartition as CKTopicPartition

__all__ = [
    "DEFAULT_CONSUMER_CONFIG",
    "OFFSET_BEGINNING",
    "OFFSET_END",
    "KafkaSource",
    "TopicPartition",
    "consumer_config",
]

TopicPartition = tuple[str, int]

#: Defaults a pipeline's ``client`` settings may override. Memory is bounded by the flush size plus
#: librdkafka's pre-fetch queue (``queued.max.messages.kbytes``, 64 MiB by default). The pre-fetch
#: settings stay at librdkafka's defaults: capping them (32 MiB, 20k messages per partition) halved
#: throughput in bench/bench_ingest.py because the synchronous loop then waited on fetches.
DEFAULT_CONSUMER_CONFIG: dict[str, Any] = {
    "auto.offset.reset": "earliest",
    "enable.partition.eof": True,  # the "drained" signal for --until-drained
    "partition.assignment.strategy": "roundrobin",  # eager, see module doc
    "session.timeout.ms": 10000,
    "queued.max.messages.kbytes": 65536,  # explicit: the memory bound documented in operations.md
    "statistics.interval.ms": 5000,  # per-partition lag for /metrics
}
#: Settings shoal owns: offsets live in the lake table.
FORCED_CONSUMER_CONFIG: dict[str, Any] = {"enable.auto.commit": False, "enable.auto.offset.store": False}


def consumer_config(
    brokers: str, group_id: str, client: Mapping[str, Any], extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    conf = dict(DEFAULT_CONSUMER_CONFIG)
    conf.update(client)
    conf.update(extra or {})
    conf.update(FORCED_CONSUMER_CONFIG)
    conf["bootstrap.servers"] = brokers
    conf["group.id"] = group_id
    return conf


AssignFn = Callable[[list[TopicPartition]], Mapping[TopicPartition, int]]
RevokeFn = Callable[[list[TopicPartition]], None]


def _ignore_end(tp: TopicPartition) -> None:
    pass


class KafkaSource:
    """Subscribe, consume in batches, position partitions from the caller, commit offsets back.

    :meth:`poll` returns only records: a partition-EOF event goes to ``on_end``, any other error
    to ``on_error`` (a fatal one also sets :attr:`fatal_error`).
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        subscription: Sequence[str],
        *,
        on_assign: AssignFn,
        on_revoke: RevokeFn,
        on_lost: RevokeFn,
        on_end: Callable[[TopicPartition], None] = _ignore_end,
        on_error: Callable[[str, str], None] | None = None,
        on_stats: Callable[[str], None] | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._log = logger or logging.getLogger("shoal.sources.kafka")
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._on_lost = on_lost
        self._on_end = on_end
        self._on_error = on_error
        self._subscription = list(subscription)
        self._cooperative = "cooperative" in str(config.get("partition.assignment.strategy", ""))
        self._fatal: CKError | None = None
        self.errors: list[CKError] = []
        conf = dict(config)
        conf["error_cb"] = self._error
        if on_stats is not None:
            conf["stats_cb"] = on_stats
        self._assigned: set[TopicPartition] = set()
        self._consumer = Consumer(conf, logger=self._log)
        self._consumer.subscribe(
            self._subscription, on_assign=self._assign, on_revoke=self._revoke, on_lost=self._lost
        )

    # -- rebalance callbacks (run inside consume()) ----------------------------------------------
    def _assign(self, consumer: Consumer, partitions: list[CKTopicPartition]) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        starts = self._on_assign(tps)
        positioned = [CKTopicPartition(t, p, starts[(t, p)]) for t, p in tps]
        if self._cooperative:
            consumer.incremental_assign(positioned)
        else:
            consumer.assign(positioned)
        self._assigned.update(tps)

    def _revoke(self, consumer: Consumer, partitions: list[CKTopicPartition]) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        try:
            self._on_revoke(tps)
        finally:
            self._assigned.difference_update(tps)
            if self._cooperative:
                consumer.incremental_unassign(partitions)

    def _lost(self, consumer: Consumer, partitions: list[CKTopicPartition]) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        try:
            self._on_lost(tps)
        finally:
            self._assigned.difference_update(tps)
            if self._cooperative:
                consumer.incremental_unassign(partitions)

    def _error(self, err: CKError) -> None:
        if err.fatal():
            self._fatal = err
        self.errors.append(err)
        del self.errors[:-100]
        self._log.warning("kafka client error", extra={"code": err.name(), "detail": err.str()})

    # -- consuming -------------------------------------------------------------------------------
    @property
    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    @property
    def fatal_error(self) -> str | None:
        """The fatal error's description once the client cannot go on (None while healthy)."""
        return None if self._fatal is None else self._fatal.str()

    def poll(self, max_records: int, timeout: float) -> list[Message]:
        """Up to ``max_records`` records; error events are handed to the callbacks, not returned."""
        msgs = self._consumer.consume(num_messages=max_records, timeout=timeout)
        if not any(m.error() is not None for m in msgs):
            return msgs
        records = []
        ends: dict[TopicPartition, int] = {}  # partition -> records of the batch before its end
        for m in msgs:
            err = m.error()
            if err is None:
                records.append(m)
            elif err.code() == CKError._PARTITION_EOF:
                ends[(m.topic(), m.partition())] = len(records)  # type: ignore[index]
            else:
                if self._on_error is not None:
                    self._on_error(err.name(), err.str())
                if err.fatal():
                    self._fatal = err
                    return []  # nothing of a batch with a fatal error: the caller stops
        for tp, before in ends.items():
            # an end followed by records of its partition in the same batch is stale: more came
            if not any((m.topic(), m.partition()) == tp for m in records[before:]):
                self._on_end(tp)
        return records

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit next offsets to Kafka asynchronously (for lag tools; never read back)."""
        owned = [CKTopicPartition(t, p, o) for (t, p), o in offsets.items() if (t, p) in self._assigned]
        if not owned:
            return
        try:
            self._consumer.commit(offsets=owned, asynchronous=True)
        except KafkaException as exc:  # e.g. rebalance in progress: harmless, the lake has them
            self._log.info("kafka offset commit skipped", extra={"detail": str(exc)})

    def watermarks(self, tp: TopicPartition, timeout: float = 5.0) -> tuple[int, int]:
        low, high = self._consumer.get_watermark_offsets(CKTopicPartition(*tp), timeout=timeout)
        return int(low), int(high)

    def close(self) -> None:
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as exc:
            self._log.warning("kafka consumer close failed", extra={"detail": str(exc)})
