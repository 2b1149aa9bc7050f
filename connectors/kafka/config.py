"""Kafka source settings, and the librdkafka defaults we tune."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Fetch settings that matter 10-40x on a fast local broker (see docs/ARCHITECTURE.md):
#: librdkafka pauses a partition for fetch.queue.backoff.ms (default 1000) whenever
#: its local queue is full, so it refills within 10 ms. Its prefetch is kept small: the
#: engine's own batches queue behind it (the fetch thread mostly waits for the next stage),
#: so a deep local queue only holds memory. With 4 MiB queued and fetches of 4 MiB (1 MiB
#: per partition) a worker's peak RSS was ~45 MB lower than with 32 / 50 / 10 MiB at the same
#: speed; 2 MiB fetches saved ~25 MB more but cost CPU (twice the fetch requests) and direct
#: mode's speed (bench/README.md, "Where it stands (night)").
TUNED_CONSUMER_DEFAULTS: dict[str, str] = {
    "fetch.queue.backoff.ms": "10",
    "fetch.wait.max.ms": "10",
    "fetch.max.bytes": "4194304",
    "max.partition.fetch.bytes": "1048576",
    "queued.max.messages.kbytes": "4096",
}

#: Settings the engine owns; users cannot override them through ``options``.
ENGINE_OWNED = ("enable.auto.commit", "enable.auto.offset.store", "enable.partition.eof")

KafkaClient = Literal["confluent", "aiokafka"]

MetadataField = Literal["topic", "partition", "offset", "timestamp", "key", "headers"]

_SECRET_WORDS = ("password", "secret", "token", "key.pem", "sasl.oauthbearer.config")


def redacted(options: dict[str, str]) -> dict[str, str]:
    """``options`` with secret values replaced, for logs and errors."""
    return {k: ("***" if any(w in k for w in _SECRET_WORDS) else v) for k, v in options.items()}


class KafkaSourceConfig(BaseModel):
    """What a :class:`~connectors.kafka.KafkaSource` reads and how.

    ``start_from`` only applies to partitions without a stored position in the
    primary sink. ``assignment="direct"`` assigns every partition to this one
    worker without joining a consumer group (no join delay; positions live in the
    sink, so this is safe for a single worker). ``options`` are passed to
    librdkafka as they are (with ``client="aiokafka"``, translated: see
    :mod:`connectors.kafka.aio_options`). ``client`` None means the ``STREAM_ETL_KAFKA_CLIENT``
    setting (default ``"confluent"``). ``read_during_join``: in group mode, read every partition
    from its stored position while the broker runs the group join, and keep what was read if
    the group then assigns this worker every partition (see docs/CONNECTORS.md).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    topics: tuple[str, ...] = Field(min_length=1)
    bootstrap_servers: str | None = None
    group_id: str | None = None
    start_from: Literal["earliest", "latest"] | datetime = "earliest"
    assignment: Literal["group", "direct"] = "group"
    metadata: tuple[MetadataField, ...] = ()
    options: dict[str, str] = Field(default_factory=dict)
    connect_timeout_s: float = Field(default=15.0, gt=0)
    client: KafkaClient | None = None
    read_during_join: bool = True

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, redacted(value) if name == "options" else value

    @field_validator("topics")
    @classmethod
    def _names(cls, topics: tuple[str, ...]) -> tuple[str, ...]:
        for topic in topics:
            if not topic or len(topic) > 249 or any(c not in _TOPIC_CHARS for c in topic):
                msg = f"{topic!r} is not a valid Kafka topic name (letters, digits, '.', '_', '-')"
                raise ValueError(msg)
        return topics

    @field_validator("options")
    @classmethod
    def _not_owned(cls, options: dict[str, str]) -> dict[str, str]:
        owned = [k for k in options if k in ENGINE_OWNED]
        if owned:
            msg = f"{owned} are managed by stream-etl (positions live in the sink); remove them"
            raise ValueError(msg)
        return {str(k): str(v) for k, v in options.items()}


_TOPIC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
