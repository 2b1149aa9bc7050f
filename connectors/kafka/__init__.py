"""Kafka connector (confluent-kafka): a source with positions kept in the sink."""

from connectors.kafka.config import KafkaSourceConfig
from connectors.kafka.source import KafkaSource

__all__ = ["KafkaSource", "KafkaSourceConfig"]
