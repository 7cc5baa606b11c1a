"""Kafka: a thin, typed wrapper over confluent-kafka's consumer, and the producer simulators use."""

from __future__ import annotations

from shoal.sources.kafka.consumer import (
    DEFAULT_CONSUMER_CONFIG,
    OFFSET_BEGINNING,
    OFFSET_END,
    KafkaSource,
    TopicPartition,
    consumer_config,
)
from shoal.sources.kafka.producer import DEFAULT_PRODUCER_CONFIG, ProduceError, produce_events

__all__ = [
    "DEFAULT_CONSUMER_CONFIG",
    "DEFAULT_PRODUCER_CONFIG",
    "OFFSET_BEGINNING",
    "OFFSET_END",
    "KafkaSource",
    "ProduceError",
    "TopicPartition",
    "consumer_config",
    "produce_events",
]
