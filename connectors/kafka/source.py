"""Kafka source on confluent-kafka (librdkafka).

Positions are Kafka offsets. The consumer never commits offsets to decide where
to resume: on every assignment it asks the run loop for the positions stored in
the primary sink and assigns the partitions at those offsets. Group offsets are
committed after each sink commit for lag tooling only.

Only C-level ``map`` calls touch individual messages (value, offset, partition),
about 40 ns each; everything after is Arrow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import pyarrow as pa
from pydantic import ValidationError

from connectors.kafka.config import TUNED_CONSUMER_DEFAULTS, KafkaClient, KafkaSourceConfig, MetadataField, redacted
from connectors.kafka.metadata import metadata_columns
from stream_etl.context import RunContext
from stream_etl.errors import ConfigurationError, SourceError, SourceMissing, SourceUnavailable
from stream_etl.records import Batch, Chunk, PartitionRegistry, SourcePartition
from stream_etl.sources import AssignmentListener, Source, SourceReader

try:
    import confluent_kafka as ck
except ImportError as exc:  # pragma: no cover - depends on the install
    msg = "the Kafka connector needs confluent-kafka: pip install 'stream-etl[kafka]'"
    raise ImportError(msg) from exc

log = logging.getLogger(__name__)

_value, _offset, _partition = ck.Message.value, ck.Message.offset, ck.Message.partition
_error, _topic = ck.Message.error, ck.Message.topic


class KafkaSource(Source):
    """Read JSON (or any format) records from one or more Kafka topics.

    ``bootstrap_servers`` defaults to the ``STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS``
    setting (or the local dev stack); ``group_id`` to the job's app id. ``client`` picks
    the Kafka client: ``"confluent"`` (librdkafka, the default) or ``"aiokafka"``
    (:mod:`connectors.kafka.aio_reader`); unset, the ``STREAM_ETL_KAFKA_CLIENT`` setting decides.
    """

    def __init__(
        self,
        topic: str | Sequence[str],
        *,
        bootstrap_servers: str | None = None,
        group_id: str | None = None,
        start_from: str | datetime = "earliest",
        assignment: str = "group",
        metadata: Sequence[MetadataField] = (),
        options: dict[str, str] | None = None,
        connect_timeout_s: float = 15.0,
        client: KafkaClient | None = None,
    ) -> None:
        topics = (topic,) if isinstance(topic, str) else tuple(topic)
        try:
            self.config = KafkaSourceConfig(
                topics=topics,
                bootstrap_servers=bootstrap_servers,
                group_id=group_id,
                start_from=start_from,  # type: ignore[arg-type]
                assignment=assignment,  # type: ignore[arg-type]
                metadata=tuple(metadata),
                options=options or {},
                connect_timeout_s=connect_timeout_s,
                client=client,
            )
        except ValidationError as exc:
            msg = f"invalid KafkaSource settings: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
            raise ConfigurationError(msg) from exc
        self.previewing = False

    def describe(self) -> str:
        return f"kafka topic {', '.join(self.config.topics)}"

    def for_preview(self) -> KafkaSource:
        """Partitions assigned directly under a separate group id: no group join (no rebalance of
        running workers) and, since previews never commit, no offsets moved in any group."""
        copy = KafkaSource.__new__(KafkaSource)
        copy.config = self.config.model_copy(update={"assignment": "direct"})
        copy.previewing = True
        return copy

    def open(self, ctx: RunContext, listener: AssignmentListener) -> SourceReader:
        config = self.config
        if self.previewing:
            config = config.model_copy(update={"group_id": f"{config.group_id or ctx.app_id}-preview"})
        client = config.client or ctx.settings.kafka_client
        if client == "aiokafka":
            try:
                from connectors.kafka.aio_reader import AioKafkaReader
            except ImportError as exc:
                raise ConfigurationError(str(exc)) from exc
            return AioKafkaReader(config, ctx, listener)
        return KafkaReader(config, ctx, listener)


class KafkaReader(SourceReader):
    """A consumer whose assignments are positioned from the sink's stored positions."""

    #: The exact ends are probed with a consumer of their own (see _true_ends).
    ends_while_polling = True

    def __init__(self, config: KafkaSourceConfig, ctx: RunContext, listener: AssignmentListener) -> None:
        self.config = config
        self.listener = listener
        self.registry = PartitionRegistry()
        bootstrap = config.bootstrap_servers or ctx.settings.kafka_bootstrap_servers
        if not bootstrap:
            msg = (
                "no Kafka bootstrap servers: set STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS, pass "
                "KafkaSource(bootstrap_servers=...), or start the local stack with `stream-etl dev up`"
            )
            raise ConfigurationError(msg)
        self.bootstrap = bootstrap
        self.client_config: dict[str, Any] = {
            **TUNED_CONSUMER_DEFAULTS,
            **ctx.settings.kafka_config(),
            **ctx.settings.kafka_consumer_config(),
            **config.options,
            "bootstrap.servers": bootstrap,
            "group.id": config.group_id or ctx.app_id,
            "client.id": f"stream-etl-{ctx.app_id}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": ctx.mode == "until_caught_up",
        }
        self._assigned: set[SourcePartition] = set()
        self._to_commit: dict[SourcePartition, int] = {}
        self._counts: dict[str, int] = {}
        self._base: dict[str, int] = {}
        self._single = len(config.topics) == 1
        self._errors = 0
        strategy = str(self.client_config.get("partition.assignment.strategy", ""))
        self._cooperative = config.assignment == "group" and "cooperative" in strategy
        self.consumer = ck.Consumer(self.client_config, error_cb=self._on_error)
        self._subscribed = False
        try:
            self._discover()
        except BaseException:
            self.consumer.close()
            raise

    # Setup ------------------------------------------------------------------------

    def _on_error(self, error: ck.KafkaError) -> None:
        self._errors += 1
        if error.fatal():
            log.error("Kafka fatal error: %s", error)
        else:
            log.warning("Kafka: %s", error)

    def _discover(self) -> None:
        try:
            metadata = self.consumer.list_topics(timeout=self.config.connect_timeout_s)
        except ck.KafkaException as exc:
            msg = (
                f"cannot reach Kafka at {self.bootstrap} ({exc.args[0]}); check the address, "
                "or start the local stack with `stream-etl dev up`"
            )
            raise SourceUnavailable(msg) from exc
        for topic in self.config.topics:
            found = metadata.topics.get(topic)
            if found is None or found.error is not None:
                known = sorted(t for t in metadata.topics if not t.startswith("__"))[:20]
                msg = f"topic {topic!r} does not exist on {self.bootstrap}; existing topics: {known}"
                raise SourceMissing(msg, stream=topic)
            count = len(found.partitions)
            self._counts[topic] = count
            self._base[topic] = len(self.registry)
            self.registry.ids_of(SourcePartition(topic, p) for p in range(count))
        log.info("Kafka %s: %s", self.bootstrap, self._counts)

    def _all_partitions(self) -> list[SourcePartition]:
        return [SourcePartition(t, p) for t, n in self._counts.items() for p in range(n)]

    def _start_offsets(self, partitions: list[ck.TopicPartition]) -> None:
        """Set partitions without a stored position to the configured start position."""
        start = self.config.start_from
        if not partitions:
            return
        if isinstance(start, datetime):
            found = self.offsets_at([SourcePartition(tp.topic, tp.partition) for tp in partitions], start)
            for tp, offset in zip(partitions, found.values(), strict=True):
                tp.offset = ck.OFFSET_END if offset is None else offset
        elif start == "earliest":
            for tp in partitions:
                tp.offset = ck.OFFSET_BEGINNING
        else:  # latest: the true end from fetch responses, not ListOffsets (see end_positions)
            ends = self._true_ends([SourcePartition(tp.topic, tp.partition) for tp in partitions])
            for tp in partitions:
                tp.offset = ends.get(SourcePartition(tp.topic, tp.partition), ck.OFFSET_END)

    def offsets_at(self, partitions: list[SourcePartition], when: datetime) -> dict[SourcePartition, int | None]:
        """Per partition, the offset of its first record at or after ``when`` (None: none yet)."""
        millis = int(when.timestamp() * 1000)
        query = [ck.TopicPartition(sp.stream, int(sp.partition), millis) for sp in partitions]
        found = self.consumer.offsets_for_times(query, timeout=self.config.connect_timeout_s)
        return {sp: (hit.offset if hit.offset >= 0 else None) for sp, hit in zip(partitions, found, strict=True)}

    def _on_assign(self, consumer: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        sps = [SourcePartition(tp.topic, tp.partition) for tp in partitions]
        for sp in sps:
            self.registry.id_of(sp)
        resume = self.listener.on_assigned(sps)
        fresh = []
        for tp, sp in zip(partitions, sps, strict=True):
            if sp in resume:
                tp.offset = resume[sp]
            else:
                fresh.append(tp)
        self._start_offsets(fresh)
        if self._cooperative:
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)
        self._assigned.update(sps)

    def _on_revoke(self, consumer: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        sps = [SourcePartition(tp.topic, tp.partition) for tp in partitions]
        self._assigned.difference_update(sps)
        self.listener.on_revoked(sps)

    # SourceReader -------------------------------------------------------------------

    def start(self) -> None:
        if self.config.assignment == "direct":
            partitions = [ck.TopicPartition(sp.stream, int(sp.partition)) for sp in self._all_partitions()]
            self._on_assign(self.consumer, partitions)
        else:
            self.consumer.subscribe(
                list(self.config.topics), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
            )
            self._subscribed = True

    def poll(self, max_records: int, timeout: float) -> Chunk | None:
        messages = self.consumer.consume(num_messages=max_records, timeout=timeout)
        if not messages:
            return None
        ends: dict[int, int] = {}
        errors = list(map(_error, messages))
        if any(errors):
            messages = self._handle_errors(messages, errors, ends)
        values: list[bytes | None] = list(map(_value, messages))
        partitions = cast(list[int], list(map(_partition, messages)))
        pids = self._pids(messages, partitions)
        try:
            nbytes = sum(map(len, values))  # type: ignore[arg-type]
        except TypeError:  # tombstones (None values)
            nbytes = sum(len(v) for v in values if v is not None)
        return Chunk(
            values=values,
            pids=pids,
            positions=cast(list[int], list(map(_offset, messages))),
            nbytes=nbytes,
            metadata=self._metadata(messages),
            ends=ends,
        )

    def _pids(self, messages: list[ck.Message], partitions: list[int]) -> list[int]:
        if self._single:
            topic = self.config.topics[0]
            if not partitions or max(partitions) < self._counts[topic]:
                return partitions  # partition number == id for the first topic
        return [
            self.registry.id_of(SourcePartition(str(t), p))
            for t, p in zip(map(_topic, messages), partitions, strict=True)
        ]

    def _metadata(self, messages: list[ck.Message]) -> dict[str, list[Any]]:
        wanted = self.config.metadata
        metadata: dict[str, list[Any]] = {}
        if "timestamp" in wanted:
            metadata["timestamp"] = [m.timestamp()[1] for m in messages]
        if "key" in wanted:
            metadata["key"] = list(map(ck.Message.key, messages))
        if "headers" in wanted:
            metadata["headers"] = list(map(ck.Message.headers, messages))
        return metadata

    def _handle_errors(
        self, messages: list[ck.Message], errors: list[ck.KafkaError | None], ends: dict[int, int]
    ) -> list[ck.Message]:
        kept = []
        for message, error in zip(messages, errors, strict=True):
            if error is None:
                kept.append(message)
            elif error.code() == ck.KafkaError._PARTITION_EOF:
                sp = SourcePartition(str(message.topic()), int(message.partition() or 0))
                ends[self.registry.id_of(sp)] = int(message.offset() or 0)
            elif error.code() in (ck.KafkaError.UNKNOWN_TOPIC_OR_PART, ck.KafkaError._UNKNOWN_TOPIC):
                msg = f"topic {message.topic()!r} disappeared from {self.bootstrap}: {error}"
                raise SourceMissing(msg, stream=message.topic())
            elif error.fatal():
                msg = f"Kafka consumer failed: {error}"
                raise SourceError(msg, stream=message.topic())
            else:
                log.warning("Kafka: %s", error)
        return kept

    def seek(self, positions: dict[SourcePartition, int | None]) -> None:
        assigned = [sp for sp in positions if sp in self._assigned]
        targets = [ck.TopicPartition(sp.stream, int(sp.partition), positions[sp] or 0) for sp in assigned]
        self._start_offsets([tp for tp, sp in zip(targets, assigned, strict=True) if positions[sp] is None])
        for tp in targets:
            for attempt in range(20):
                try:
                    self.consumer.seek(tp)
                    break
                except ck.KafkaException as exc:
                    if attempt == 19:
                        msg = f"cannot seek {tp.topic}-{tp.partition} to {tp.offset}: {exc}"
                        raise SourceUnavailable(msg, stream=tp.topic) from exc
                    time.sleep(0.1)

    def assignment(self) -> list[SourcePartition]:
        return sorted(self._assigned)

    pausable = True

    def pause(self) -> None:
        """Pause every assigned partition: librdkafka stops fetching and drops what it had
        prefetched for them; :meth:`resume` fetches again from the last record returned."""
        self._pause_resume(self.consumer.pause)

    def resume(self) -> None:
        self._pause_resume(self.consumer.resume)

    def _pause_resume(self, action: Any) -> None:
        partitions = [ck.TopicPartition(sp.stream, int(sp.partition)) for sp in self._assigned]
        if partitions:
            try:
                action(partitions)
            except ck.KafkaException as exc:  # a partition revoked meanwhile: the next call sees the new set
                log.debug("pause/resume of %s failed: %s", [str(p) for p in self._assigned], exc)

    def end_positions(self) -> dict[SourcePartition, int]:
        return self._true_ends(self._all_partitions())

    def rough_end_positions(self) -> dict[SourcePartition, int]:
        return {sp: high for sp, (low, high) in self._watermarks(self._all_partitions()).items() if high > low}

    def _watermarks(self, partitions: list[SourcePartition]) -> dict[SourcePartition, tuple[int, int]]:
        timeout = self.config.connect_timeout_s
        return {
            sp: self.consumer.get_watermark_offsets(
                ck.TopicPartition(sp.stream, int(sp.partition)), timeout=timeout, cached=False
            )
            for sp in partitions
        }

    def _true_ends(self, partitions: list[SourcePartition]) -> dict[SourcePartition, int]:
        """Ends of the non-empty ``partitions``, read from fetch responses: ListOffsets alone
        can understate them on some brokers (Tansu answers the last record batch's base).
        Everything goes through a probe consumer: the fetch thread may be polling ours
        (``ends_while_polling``), and a watermark query on it meanwhile hung."""
        return _probe_ends(self.client_config, partitions, self.config.connect_timeout_s)

    def commit(self, positions: dict[SourcePartition, int]) -> None:
        self._to_commit.update(positions)
        self._commit_offsets(asynchronous=True)

    def _commit_offsets(self, *, asynchronous: bool) -> None:
        """Group offsets = stored positions + 1, for lag tooling only; failures are harmless."""
        offsets = [
            ck.TopicPartition(sp.stream, int(sp.partition), position + 1)
            for sp, position in self._to_commit.items()
            if sp in self._assigned
        ]
        if offsets:
            try:
                if asynchronous:
                    self.consumer.commit(offsets=offsets, asynchronous=True)
                else:
                    self.consumer.commit(offsets=offsets, asynchronous=False)
            except ck.KafkaException as exc:
                log.debug("committing group offsets for lag tooling failed: %s", exc)

    def metadata_columns(self, batch: Batch, rows: pa.Int32Array) -> dict[str, pa.Array]:
        return metadata_columns(self.config.metadata, self.registry, batch, rows)

    def close(self) -> None:
        if self._subscribed and not self._assigned:
            self._finish_join()
        self._commit_offsets(asynchronous=False)
        self.consumer.close()

    def _finish_join(self) -> None:
        """Closing in the middle of a group join can leave a member behind that some brokers
        (Tansu) never expire, blocking the group's next join. Let the join finish first, so
        the close sends a proper LeaveGroup; records read meanwhile are dropped, not committed."""
        session_ms = int(self.client_config.get("session.timeout.ms", 45000))
        deadline = time.monotonic() + min(session_ms / 1000 + 5, 30)
        while not self._assigned and time.monotonic() < deadline:
            self.consumer.consume(num_messages=1000, timeout=0.2)

    def __repr__(self) -> str:
        return f"<KafkaReader {self.config.topics} {redacted(self.client_config)}>"


def _probe_ends(
    client_config: dict[str, Any], partitions: list[SourcePartition], timeout_s: float
) -> dict[SourcePartition, int]:
    """Read from just before each non-empty partition's high watermark until end-of-partition;
    return the true ends."""
    if not partitions:
        return {}
    config = {**client_config, "enable.partition.eof": True, "group.id": f"{client_config['group.id']}-probe"}
    probe = ck.Consumer(config)
    ends: dict[SourcePartition, int] = {}
    candidates: dict[SourcePartition, int] = {}
    try:
        for sp in partitions:
            low, high = probe.get_watermark_offsets(
                ck.TopicPartition(sp.stream, int(sp.partition)), timeout=timeout_s, cached=False
            )
            if high > low:
                candidates[sp] = max(high - 1, low)
        if not candidates:
            return {}
        probe.assign([ck.TopicPartition(sp.stream, int(sp.partition), at) for sp, at in candidates.items()])
        deadline = time.monotonic() + timeout_s
        while len(ends) < len(candidates) and time.monotonic() < deadline:
            for message in probe.consume(num_messages=1000, timeout=0.2):
                error = message.error()
                if error is not None and error.code() == ck.KafkaError._PARTITION_EOF:
                    sp = SourcePartition(str(message.topic()), int(message.partition() or 0))
                    ends[sp] = int(message.offset() or 0)
    finally:
        probe.close()
    missing = [str(sp) for sp in candidates if sp not in ends]
    if missing:
        msg = f"could not find the end of {missing} within {timeout_s}s"
        raise SourceUnavailable(msg)
    return ends
