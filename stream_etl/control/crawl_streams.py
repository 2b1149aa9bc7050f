"""Crawl Kafka topics and Kinesis streams: sample records from every partition or shard.

Kafka: the consumer is assigned every partition directly (no group join) at the last
``sample_size`` offsets of each, reads to the end of each (keeping its last ``sample_size``
records) or until the time runs out, and is closed. The target option ``sample_from=beginning``
reads the first ``sample_size`` records of each partition instead. Kinesis: each shard is read from
``TRIM_HORIZON`` up to ``sample_size`` records. The samples of a topic or stream are
classified together (:func:`stream_etl.control.classifiers.classify`).
"""

from __future__ import annotations

import re
import time
from collections import deque
from typing import Any

from stream_etl.control.classifiers import classify
from stream_etl.control.crawl_targets import CrawlContext, Crawled, Found, Target, table_name
from stream_etl.errors import ConfigurationError


class CrawlError(ConfigurationError):
    """A target the crawler cannot read (missing topic or stream): fix the crawler's targets."""


def _resolver(target: Target, context: CrawlContext) -> Any:
    url = target.options.get("schema_registry_url")
    if not url:
        return context.resolver
    from stream_etl.formats.registry import RegistryResolver

    return RegistryResolver(url)


def _found(target: Target, context: CrawlContext, samples: list[bytes | None], **parameters: Any) -> Crawled:
    location = f"{target.kind}://{target.path}"
    crawled = Crawled(sampled=len(samples), scope=re.compile(re.escape(location)))
    answer = classify(samples, custom=context.custom, resolver=_resolver(target, context))
    if answer is None:
        crawled.unclassified.append(location)
        return crawled
    parameters = {**parameters, **answer.parameters, "type_of_data": target.kind, "records_sampled": len(samples)}
    crawled.tables.append(
        Found(
            name=table_name(target.path),
            location=location,
            format=answer.classification,
            classification=answer.classification,
            schema=answer.schema,
            certainty=answer.certainty,
            parameters=parameters,
        )
    )
    return crawled


def kafka_consumer_config(context: CrawlContext) -> dict[str, Any]:
    settings = context.settings
    if context.connection is not None:
        config: dict[str, Any] = context.connection.client_config()
    elif settings.kafka_bootstrap_servers:
        config = {**settings.kafka_config(), "bootstrap.servers": settings.kafka_bootstrap_servers}
    else:
        msg = "no Kafka to crawl: give the target a kafka connection or set STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS"
        raise ConfigurationError(msg)
    return {
        **settings.kafka_consumer_config(),
        **config,
        "group.id": "stream-etl-crawler",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "socket.timeout.ms": int(context.timeout_s * 1000),
    }


def crawl_kafka(target: Target, context: CrawlContext) -> Crawled:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(kafka_consumer_config(context))
    try:
        metadata = consumer.list_topics(target.path, timeout=context.timeout_s)
        topic = metadata.topics.get(target.path)
        if topic is None or topic.error is not None or not topic.partitions:
            msg = f"Kafka topic {target.path!r} does not exist (or has no partitions): check the crawler's target"
            raise CrawlError(msg)
        from_beginning = target.options.get("sample_from", "end") == "beginning"
        assignment = []
        for partition in sorted(topic.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(target.path, partition), timeout=context.timeout_s
            )
            if high > low:
                start = low if from_beginning else max(low, high - context.sample_size)
                assignment.append(TopicPartition(target.path, partition, start))
        samples = _read(consumer, assignment, context, first=from_beginning) if assignment else []
    finally:
        consumer.close()
    return _found(target, context, samples, topic=target.path, partitions=len(topic.partitions))


def _read(consumer: Any, assignment: list[Any], context: CrawlContext, *, first: bool) -> list[bytes | None]:
    """The last (or with ``first``, the first) ``sample_size`` records of each assigned partition.

    Reads to the end (EOF) of each partition: a broker may understate the high watermark (Tansu
    answers the last batch's base offset + 1), so the end is where EOF is, not the watermark."""
    from confluent_kafka import KafkaError

    size = context.sample_size
    kept: dict[int, deque[bytes | None]] = {tp.partition: deque(maxlen=size) for tp in assignment}
    consumer.assign(assignment)
    reading = set(kept)
    deadline = time.monotonic() + context.timeout_s
    while reading and time.monotonic() < deadline:
        for message in consumer.consume(num_messages=1000, timeout=0.2):
            partition, error = message.partition(), message.error()
            if partition not in reading:
                continue
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    reading.discard(partition)
                continue
            kept[partition].append(message.value())
            if first and len(kept[partition]) == size:
                reading.discard(partition)
    return [value for values in kept.values() for value in values]


def crawl_kinesis(target: Target, context: CrawlContext) -> Crawled:
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import ClientError
    except ImportError as exc:
        msg = "crawling Kinesis needs boto3: pip install 'stream-etl[kinesis]'"
        raise ConfigurationError(msg) from exc
    options = (
        context.connection.client_options()
        if context.connection is not None
        else context.settings.kinesis_client_options()
    )
    config = Config(connect_timeout=context.timeout_s, read_timeout=context.timeout_s, retries={"max_attempts": 2})
    client = boto3.client("kinesis", config=config, **options)
    samples: list[bytes | None] = []
    try:
        try:
            shards = [s["ShardId"] for s in client.list_shards(StreamName=target.path)["Shards"]]
        except ClientError as exc:
            msg = f"Kinesis stream {target.path!r} cannot be listed: {exc}; check the crawler's target"
            raise CrawlError(msg) from exc
        deadline = time.monotonic() + context.timeout_s
        for shard in shards:
            iterator = client.get_shard_iterator(
                StreamName=target.path, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
            ).get("ShardIterator")
            got = 0
            while iterator and got < context.sample_size and time.monotonic() < deadline:
                answer = client.get_records(ShardIterator=iterator, Limit=context.sample_size - got)
                records = answer.get("Records", [])
                samples.extend(r["Data"] for r in records)
                got += len(records)
                if not records and not answer.get("MillisBehindLatest"):
                    break
                iterator = answer.get("NextShardIterator")
    finally:
        client.close()
    return _found(target, context, samples, stream=target.path, shards=len(shards))
