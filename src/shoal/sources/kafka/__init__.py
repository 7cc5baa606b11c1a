"""Kafka as a source: a thin, typed wrapper over confluent-kafka's consumer."""

from __future__ import annotations

from shoal.sources.kafka.consumer import (
    DEFAULT_CONSUMER_CONFIG,
    OFFSET_BEGINNING,
    OFFSET_END,
    KafkaSource,
    TopicPartition,
    consumer_config,
)

__all__ = [
    "DEFAULT_CONSUMER_CONFIG",
    "OFFSET_BEGINNING",
    "OFFSET_END",
    "KafkaSource",
    "TopicPartition",
    "consumer_config",
]
