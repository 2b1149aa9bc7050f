"""librdkafka-style options translated for aiokafka (connectors/kafka/aio_options.py)."""

from __future__ import annotations

import pytest

from connectors.kafka import KafkaSource
from connectors.kafka.aio_options import aiokafka_options
from connectors.kafka.config import TUNED_CONSUMER_DEFAULTS
from stream_etl.errors import ConfigurationError
from stream_etl.settings import Settings


def test_librdkafka_names_become_aiokafka_keywords() -> None:
    translated = aiokafka_options(
        {
            "session.timeout.ms": "6000",
            "heartbeat.interval.ms": "1000",
            "isolation.level": "read_committed",
            "security.protocol": "sasl_plaintext",
            "check.crcs": "false",
            "max_poll_records": "500",  # aiokafka's own name passes through
            "group.id": "ignored",  # the reader sets it
        }
    )
    assert translated == {
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 1000,
        "isolation_level": "read_committed",
        "security_protocol": "SASL_PLAINTEXT",
        "check_crcs": False,
        "max_poll_records": 500,
    }


def test_the_tuned_librdkafka_defaults_translate_or_are_dropped() -> None:
    translated = aiokafka_options(TUNED_CONSUMER_DEFAULTS)
    assert translated == {"fetch_max_wait_ms": 10, "fetch_max_bytes": 4194304, "max_partition_fetch_bytes": 1048576}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"enable.sparse.connections": "true"}, "no aiokafka equivalent"),
        ({"session.timeout.ms": "soon"}, "not valid"),
        ({"partition.assignment.strategy": "cooperative-sticky"}, "range or roundrobin"),
    ],
    ids=["unknown", "not-a-number", "assignor"],
)
def test_options_without_an_equivalent_fail_fast(options: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        aiokafka_options(options)


def test_the_client_comes_from_the_source_or_the_setting() -> None:
    assert KafkaSource("t", client="aiokafka").config.client == "aiokafka"
    assert KafkaSource("t").config.client is None
    assert Settings.from_environment({"STREAM_ETL_KAFKA_CLIENT": "aiokafka"}).kafka_client == "aiokafka"
    assert Settings().kafka_client == "confluent"
    with pytest.raises(ConfigurationError, match="STREAM_ETL_KAFKA_CLIENT: Input should be 'confluent' or 'aiokafka'"):
        Settings.from_environment({"STREAM_ETL_KAFKA_CLIENT": "kafka-python"})
    with pytest.raises(ConfigurationError, match="client"):
        KafkaSource("t", client="kafka-python")  # type: ignore[arg-type]
