"""Topic administration and a fast producer, for `stream-etl produce`, tests and benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from stream_etl.errors import SourceUnavailable

#: Producer settings for bulk loads: large batches, lz4, enough queue for 1M records.
BULK_PRODUCER_DEFAULTS: dict[str, Any] = {
    "linger.ms": 20,
    "batch.num.messages": 10000,
    "batch.size": 1048576,
    "queue.buffering.max.messages": 2000000,
    "queue.buffering.max.kbytes": 1048576,
    "compression.type": "lz4",
    "enable.idempotence": True,
}


def ensure_topic(
    bootstrap: str, topic: str, *, partitions: int, timeout_s: float = 15.0, options: dict[str, str] | None = None
) -> bool:
    """Create ``topic`` if it does not exist. Returns True when it was created."""
    admin = AdminClient({**(options or {}), "bootstrap.servers": bootstrap})
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except ck.KafkaException as exc:
        msg = f"cannot reach Kafka at {bootstrap} ({exc.args[0]}); is `stream-etl dev up` running?"
        raise SourceUnavailable(msg) from exc
    if topic in metadata.topics:
        return False
    future = admin.create_topics([NewTopic(topic, num_partitions=partitions)])[topic]
    try:
        future.result(timeout=timeout_s)
    except ck.KafkaException as exc:
        if exc.args[0].code() != ck.KafkaError.TOPIC_ALREADY_EXISTS:
            raise
        return False
    return True


def produce(
    bootstrap: str,
    topic: str,
    values: Iterable[bytes | None],
    *,
    keys: Iterable[bytes | None] | None = None,
    options: dict[str, Any] | None = None,
    on_progress: Callable[[int], None] | None = None,
    rate: float | None = None,
) -> int:
    """Produce ``values`` to ``topic`` (partitioned by key, else spread); returns the count.

    ``rate`` (records per second) paces the producer: it sends in 10 ms ticks, never ahead
    of ``rate * elapsed``; without it, as fast as the broker takes them."""
    producer = ck.Producer({**BULK_PRODUCER_DEFAULTS, **(options or {}), "bootstrap.servers": bootstrap})
    failures: list[ck.KafkaError] = []

    def delivered(error: ck.KafkaError | None, _message: ck.Message) -> None:
        if error is not None:
            failures.append(error)

    count = 0
    key_iter = iter(keys) if keys is not None else None
    started = time.monotonic()
    for value in values:
        if rate and count >= rate * (time.monotonic() - started):
            producer.poll(0)
            time.sleep(0.01)
        key = next(key_iter) if key_iter is not None else None
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
        if count % 10000 == 0:
            producer.poll(0)
            if on_progress is not None:
                on_progress(count)
    remaining = producer.flush(60)
    if remaining or failures:
        msg = f"{remaining} record(s) not delivered to {topic}; first error: {failures[:1]}"
        raise SourceUnavailable(msg, stream=topic)
    if on_progress is not None:
        on_progress(count)
    return count
