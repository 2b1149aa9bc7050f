"""What EVENT triggers watch: a Kafka topic's end offsets, the objects under an S3 prefix.

Each probe answers ``(new, level)``: how many records or objects lie past ``baseline`` and the
level to use as the next baseline (Kafka: the sum of the end offsets; S3: the keys seen among
the objects modified lately, and older objects count as seen). The first look (no baseline) counts nothing new: data
that was there before the trigger never fires it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from stream_etl.control.connections import Connections, KafkaConnection, S3Connection
from stream_etl.control.trigger_specs import EventCondition
from stream_etl.errors import ConfigurationError
from stream_etl.settings import Settings


def new_data(
    event: EventCondition,
    baseline: Any,
    connections: Connections,
    settings: Settings,
    *,
    timeout_s: float = 10.0,
) -> tuple[int, Any]:
    if event.source == "kafka":
        config = _kafka_config(event.connection, connections, settings)
        total = kafka_end_offsets(config, str(event.topic), timeout_s=timeout_s)
        return (total - int(baseline) if baseline is not None else 0), total
    objects = s3_objects(
        _s3_connection(event.connection, connections, settings), str(event.location), timeout_s=timeout_s
    )
    new = 0
    if baseline is not None:
        seen = set(baseline["seen"])
        new = sum(1 for modified, key in objects if modified > baseline["since"] and key not in seen)
    return new, _s3_level(objects)


#: Objects modified this long before the newest one count as seen by key, not by time: an upload's
#: time is when it began, and times have a resolution of a second.
S3_SLACK = timedelta(minutes=5)


def _s3_level(objects: list[tuple[str, str]]) -> dict[str, Any]:
    newest = max((modified for modified, _key in objects), default="")
    since = (datetime.fromisoformat(newest) - S3_SLACK).isoformat() if newest else ""
    return {"since": since, "seen": sorted(key for modified, key in objects if modified > since)}


def slot_of(baseline: Any) -> str:
    """A firing slot for the data past ``baseline`` (short enough for the slot column)."""
    text = repr(baseline)
    return f"after:{text}" if len(text) < 200 else f"after:{hashlib.sha256(text.encode()).hexdigest()}"


def kafka_end_offsets(config: Mapping[str, str], topic: str, *, timeout_s: float) -> int:
    """The sum of the topic's partitions' end offsets (high watermarks)."""
    from confluent_kafka import Consumer, TopicPartition  # type: ignore[attr-defined]

    consumer = Consumer({**config, "group.id": "stream-etl-scheduler", "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return 0  # not there yet: nothing new
        return sum(
            int(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s, cached=False)[1])
            for p in metadata.partitions
        )
    finally:
        consumer.close()


def s3_objects(connection: S3Connection, location: str, *, timeout_s: float) -> list[tuple[str, str]]:
    """``(modified time in UTC, ISO format; key)`` of every object under ``s3://bucket/prefix``."""
    import pyarrow.fs as pafs

    from stream_etl.control.probes import s3_filesystem

    path = location.removeprefix("s3://").rstrip("/")
    infos = s3_filesystem(connection, timeout_s).get_file_info(
        pafs.FileSelector(path, recursive=True, allow_not_found=True)
    )
    return [
        (info.mtime.astimezone(UTC).isoformat() if info.mtime else "", info.path)
        for info in infos
        if info.type == pafs.FileType.File
    ]


def _kafka_config(connection: str | None, connections: Connections, settings: Settings) -> dict[str, str]:
    if connection:
        fields = connections.resolve(connection)
        if not isinstance(fields, KafkaConnection):
            msg = f"connection {connection!r} is not a kafka connection"
            raise ConfigurationError(msg)
        return fields.client_config()
    return {"bootstrap.servers": settings.kafka_bootstrap_servers or "127.0.0.1:9092", **settings.kafka_config()}


def _s3_connection(connection: str | None, connections: Connections, settings: Settings) -> S3Connection:
    if connection:
        fields = connections.resolve(connection)
        if not isinstance(fields, S3Connection):
            msg = f"connection {connection!r} is not an s3 connection"
            raise ConfigurationError(msg)
        return fields
    return S3Connection(
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key,
    )
