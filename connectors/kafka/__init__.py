"""Kafka connector (confluent-kafka): a source with positions kept in the sink, and a sink
that writes rows and positions in one Kafka transaction."""

from connectors.kafka.config import KafkaSourceConfig
from connectors.kafka.sink import KafkaSink
from connectors.kafka.source import KafkaSource

__all__ = ["KafkaSink", "KafkaSource", "KafkaSourceConfig"]
