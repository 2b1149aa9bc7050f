"""Kafka client options for aiokafka: the librdkafka names users already write, translated.

``KafkaSource(options=...)``, ``STREAM_ETL_KAFKA_OPTIONS`` and ``STREAM_ETL_KAFKA_CONSUMER_OPTIONS``
use librdkafka's dotted names. With ``client="aiokafka"`` the ones that have an aiokafka
equivalent are translated; aiokafka's own keyword names (``session_timeout_ms``) pass through;
librdkafka-only tuning (its local queue) is dropped; anything else fails fast.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from stream_etl.errors import ConfigurationError


def _bool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _assignor(value: str) -> tuple[Any, ...]:
    from aiokafka.coordinator.assignors.range import RangePartitionAssignor
    from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

    known = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor}
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        msg = f"partition.assignment.strategy {unknown} is not available with aiokafka; use range or roundrobin"
        raise ConfigurationError(msg)
    return tuple(known[n] for n in names)


#: librdkafka name -> (aiokafka keyword, conversion).
TRANSLATED: dict[str, tuple[str, Callable[[str], Any]]] = {
    "session.timeout.ms": ("session_timeout_ms", int),
    "heartbeat.interval.ms": ("heartbeat_interval_ms", int),
    "max.poll.interval.ms": ("max_poll_interval_ms", int),
    "fetch.wait.max.ms": ("fetch_max_wait_ms", int),
    "fetch.min.bytes": ("fetch_min_bytes", int),
    "fetch.max.bytes": ("fetch_max_bytes", int),
    "max.partition.fetch.bytes": ("max_partition_fetch_bytes", int),
    "request.timeout.ms": ("request_timeout_ms", int),
    "metadata.max.age.ms": ("metadata_max_age_ms", int),
    "retry.backoff.ms": ("retry_backoff_ms", int),
    "connections.max.idle.ms": ("connections_max_idle_ms", int),
    "isolation.level": ("isolation_level", str),
    "check.crcs": ("check_crcs", _bool),
    "client.id": ("client_id", str),
    "client.rack": ("client_rack", str),
    "group.instance.id": ("group_instance_id", str),
    "security.protocol": ("security_protocol", str.upper),
    "sasl.mechanism": ("sasl_mechanism", str.upper),
    "sasl.mechanisms": ("sasl_mechanism", str.upper),
    "sasl.username": ("sasl_plain_username", str),
    "sasl.password": ("sasl_plain_password", str),
    "partition.assignment.strategy": ("partition_assignment_strategy", _assignor),
}

#: librdkafka settings of its local fetch queue and client internals: no aiokafka equivalent,
#: and no effect on what is read. Dropped.
LIBRDKAFKA_ONLY = frozenset(
    {
        "fetch.queue.backoff.ms",
        "queued.max.messages.kbytes",
        "queued.min.messages",
        "statistics.interval.ms",
        "socket.keepalive.enable",
        "topic.metadata.refresh.interval.ms",
        "log_level",
        "debug",
    }
)


def aiokafka_options(options: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments for ``AIOKafkaConsumer`` from librdkafka-style ``options``."""
    translated: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in options.items():
        if key in TRANSLATED:
            name, convert = TRANSLATED[key]
            try:
                translated[name] = convert(value)
            except ValueError as exc:
                msg = f"Kafka option {key}={value!r} is not valid: {exc}"
                raise ConfigurationError(msg) from exc
        elif key in LIBRDKAFKA_ONLY or key in ("bootstrap.servers", "group.id"):  # the reader sets these
            continue
        elif "." not in key and key.islower():  # aiokafka's own keyword name
            translated[key] = int(value) if value.isdigit() else value
        else:
            unknown.append(key)
    if unknown:
        msg = (
            f"Kafka options {sorted(unknown)} have no aiokafka equivalent; remove them, use "
            f"aiokafka's keyword names, or use client='confluent'. Translated: {sorted(TRANSLATED)}"
        )
        raise ConfigurationError(msg)
    return translated
