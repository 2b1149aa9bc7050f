"""The Kafka sink's positions topic: a compacted topic holding, per job and source
partition, the last position written to the sink's topic (and the source's cursor).

Records: key ``[app id, stream, partition]`` (JSON), value ``{"position": n, "cursor": c}``.
They are written in the transaction of the rows they describe, and read back with a
``read_committed`` consumer from the beginning to the end of the topic (Kafka compacts it
to one record per key; the local broker does not compact, so reading takes longer as
commits accumulate).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from stream_etl.errors import SinkUnavailable

try:
    import confluent_kafka as ck
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
except ImportError as exc:  # pragma: no cover - depends on the install
    msg = "the Kafka connector needs confluent-kafka: pip install 'stream-etl[kafka]'"
    raise ImportError(msg) from exc

log = logging.getLogger(__name__)

Stored = dict[tuple[str, str], tuple[int, "str | None"]]


def ensure_topics(common: dict[str, Any], topics: dict[str, int], positions_topic: str, timeout_s: float) -> list[str]:
    """Create the missing ones of ``topics`` (name -> partitions) and the compacted positions topic;
    return the ones of ``topics`` this call created."""
    admin = AdminClient(common)
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except ck.KafkaException as exc:
        msg = f"cannot reach Kafka at {common['bootstrap.servers']} ({exc.args[0]})"
        raise SinkUnavailable(msg, table_uri=next(iter(topics), positions_topic)) from exc
    wanted = [NewTopic(name, num_partitions=n) for name, n in topics.items() if name not in existing]
    if positions_topic not in existing:
        wanted.append(NewTopic(positions_topic, num_partitions=1, config={"cleanup.policy": "compact"}))
    created: list[str] = []
    if not wanted:
        return created
    for topic, future in admin.create_topics(wanted).items():
        try:
            future.result(timeout=timeout_s)
            log.info("created topic %s", topic)
            created += [topic] if topic in topics else []
        except ck.KafkaException as exc:
            if exc.args[0].code() != ck.KafkaError.TOPIC_ALREADY_EXISTS:
                msg = f"creating topic {topic} failed: {exc.args[0]}"
                raise SinkUnavailable(msg, table_uri=topic) from exc
    return created


def read_positions_topic(common: dict[str, Any], topic: str, app_id: str, timeout_s: float) -> Stored:
    """``app_id``'s stored positions and cursors: the positions topic read to its end, committed records only."""
    consumer = ck.Consumer(
        {
            **common,
            "group.id": f"stream-etl-{app_id}-positions-reader",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    found: Stored = {}
    try:
        consumer.assign([ck.TopicPartition(topic, 0, ck.OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout_s
        while True:
            if time.monotonic() > deadline:
                msg = f"reading the positions topic {topic} did not reach its end in {timeout_s}s"
                raise SinkUnavailable(msg, table_uri=topic)
            done = False
            for message in consumer.consume(num_messages=10000, timeout=0.5):  # a record per partition and commit
                error = message.error()
                if error is not None:
                    if error.code() == ck.KafkaError._PARTITION_EOF:
                        done = True
                        continue
                    msg = f"reading {topic} failed: {error}"
                    raise SinkUnavailable(msg, table_uri=topic)
                owner, stream, part = json.loads(message.key() or b"[]")
                if owner == app_id:
                    value = json.loads(message.value() or b"{}")
                    found[(stream, part)] = (int(value["position"]), value.get("cursor"))
            if done:
                return found
    finally:
        consumer.close()
