"""Kafka source on confluent-kafka (librdkafka).

Positions are Kafka offsets. The consumer never commits offsets to decide where
to resume: on every assignment it asks the run loop for the positions stored in
the primary sink and assigns the partitions at those offsets. Group offsets are
committed after each sink commit for lag tooling only.

Records come through the native path when it is built (connectors/kafka/native.py: one call
per poll returns a chunk of buffers and Arrow arrays, no Python object per record); otherwise
through confluent-kafka's Messages, where only C-level ``map`` calls touch each one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import pyarrow as pa
from pydantic import ValidationError

from connectors.kafka import native
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
        read_during_join: bool = True,
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
                read_during_join=read_during_join,
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
        self._single = len(config.topics) == 1
        self._errors = 0
        strategy = str(self.client_config.get("partition.assignment.strategy", ""))
        self._cooperative = config.assignment == "group" and "cooperative" in strategy
        self.consumer = ck.Consumer(self.client_config, error_cb=self._on_error)
        self._subscribed = False
        self._native: native.NativeRecords | None = None
        #: Reading during the group join (see _start_early): a second, directly assigned
        #: consumer, its native records, and whether the group's verdict is still awaited.
        self._early: ck.Consumer | None = None
        self._early_native: native.NativeRecords | None = None
        self._awaiting_verdict = False
        self._main_paused = False
        try:
            self._discover()
            if native.available(config.metadata):
                self._native = native.NativeRecords(
                    self.consumer,
                    self.registry,
                    timestamps="timestamp" in config.metadata,
                    keys="key" in config.metadata,
                )
                log.info("Kafka records through the native record path")
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
        if self._awaiting_verdict and self._verdict(consumer, partitions, sps):
            return
        resume = self.listener.on_assigned(sps)
        fresh = []
        for tp, sp in zip(partitions, sps, strict=True):
            if sp in resume:
                tp.offset = resume[sp]
            else:
                fresh.append(tp)
        self._start_offsets(fresh)
        if self._native is not None:  # before the fetch starts: its records then bypass the consumer queue
            self._native.forward([(tp.topic, tp.partition) for tp in partitions])
        if self._cooperative:
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)
        if self._main_paused:  # librdkafka keeps a pause across assignments (see _verdict)
            try:
                consumer.resume(partitions)
            except ck.KafkaException as exc:
                log.debug("resuming %s failed: %s", [str(p) for p in sps], exc)
        self._assigned.update(sps)

    def _on_revoke(self, consumer: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        sps = [SourcePartition(tp.topic, tp.partition) for tp in partitions]
        if self._awaiting_verdict:  # lost before any assignment: what was read is not ours
            self.listener.on_revoked(self._all_partitions())
            self._awaiting_verdict = False
        self._close_early()  # partitions change hands: the group consumer reads from now on
        self._assigned.difference_update(sps)
        self.listener.on_revoked(sps)

    # Reading during the group join --------------------------------------------------

    def _start_early(self) -> None:
        """Read every partition from its stored position while the broker runs the join.

        A worker that joins a group waits seconds for its assignment (the broker's initial
        rebalance delay). Meanwhile a second consumer, assigned every partition directly
        (another group id; it never joins), reads from the positions the primary sink stores,
        and the pipeline decodes, transforms and writes what it reads; the run loop commits
        nothing until the group's verdict (``awaiting_assignment``). If the group assigns this
        worker every partition, the batches read are exactly those the group consumer would
        have read, so they are kept and the early consumer goes on reading (the group
        consumer keeps the membership, its partitions paused). Otherwise everything read is
        dropped (a rebalance's generation change) and the group consumer reads as usual.
        Either way a commit stores positions only for rows after the stored ones (the sinks'
        replay guard), so a verdict against a moved position cannot duplicate a record.
        """
        partitions = self._all_partitions()
        resume = self.listener.on_assigned(partitions)
        tps = [ck.TopicPartition(sp.stream, int(sp.partition), resume.get(sp, ck.OFFSET_INVALID)) for sp in partitions]
        self._start_offsets([tp for tp, sp in zip(tps, partitions, strict=True) if sp not in resume])
        config = {**self.client_config, "group.id": f"{self.client_config['group.id']}-join-read"}
        early = ck.Consumer(config, error_cb=self._on_error)
        try:
            records = native.NativeRecords(
                early, self.registry, timestamps="timestamp" in self.config.metadata, keys="key" in self.config.metadata
            )
            records.forward([(tp.topic, tp.partition) for tp in tps])
            early.assign(tps)
        except BaseException:
            early.close()
            raise
        self._early, self._early_native, self._awaiting_verdict = early, records, True
        log.info("reading %d partitions from their stored positions during the group join", len(tps))

    def _verdict(self, consumer: ck.Consumer, partitions: list[ck.TopicPartition], sps: list[SourcePartition]) -> bool:
        """The group's first assignment while reading early: keep reading (True) or drop it all.
        The run loop commits once ``awaiting_assignment`` turns False: only after a drop made
        what was read stale (``on_revoked``)."""
        if set(sps) == set(self._all_partitions()):
            consumer.assign(partitions)
            consumer.pause(partitions)  # membership only: the early consumer reads them
            self._main_paused = True
            self._assigned.update(sps)
            if self._early_native is not None:
                self._early_native.heal()
            log.info("the group assigned every partition: keeping what was read during the join")
            self._awaiting_verdict = False
            return True
        log.info(
            "the group assigned %d of %d partitions: dropping what was read during the join",
            len(sps),
            len(self._all_partitions()),
        )
        self.listener.on_revoked(self._all_partitions())
        self._awaiting_verdict = False
        self._close_early()
        return False

    def _close_early(self) -> None:
        if self._early is not None:
            if self._early_native is not None:
                self._early_native.close()
            self._early.close()
            self._early, self._early_native = None, None

    @property
    def awaiting_assignment(self) -> bool:  # type: ignore[override]
        """Records read during the join are not this worker's until the group's verdict."""
        return self._awaiting_verdict

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
            if (
                self.config.read_during_join
                and self._native is not None
                and not self._cooperative
                and not getattr(self.listener, "stateful", False)
            ):
                self._start_early()

    def poll(self, max_records: int, timeout: float) -> Chunk | None:
        if self._native is not None:
            return self._poll_native(self._native, max_records, timeout)
        return self._poll_messages(self.consumer.consume(num_messages=max_records, timeout=timeout))

    def _poll_native(self, records: native.NativeRecords, max_records: int, timeout: float) -> Chunk | None:
        """Rebalance, error and commit events from the consumer queue (confluent-kafka serves
        their callbacks), then records from the native queue (the early consumer's while it
        reads for this worker: see _start_early)."""
        if self._early_native is not None:
            stray = self._poll_messages(self.consumer.consume(num_messages=max_records, timeout=0))
            if stray is not None:  # fetched before the pause took effect: the early consumer has them
                log.debug("dropped %d records the paused group consumer fetched", len(stray))
            if self._early_native is not None:  # the callbacks may have closed it
                return self._read_native(self._early_native, max_records, timeout)
        if not self._assigned:  # nothing can arrive natively: wait on the consumer queue (the join)
            return self._poll_messages(self.consumer.consume(num_messages=max_records, timeout=timeout))
        stray = self._poll_messages(self.consumer.consume(num_messages=max_records, timeout=0))
        if stray is not None:  # a partition's fetch started before its forward took effect
            records.heal()
            return stray
        return self._read_native(records, max_records, timeout)

    def _read_native(self, records: native.NativeRecords, max_records: int, timeout: float) -> Chunk | None:
        chunk, errors = records.poll(max_records, timeout)
        if errors:
            ends: dict[int, int] = {}
            self._native_errors(errors, ends)
            if ends:
                chunk = _with_ends(chunk, ends)
        elif chunk is None:
            records.heal()
        return chunk

    @property
    def can_hold_back(self) -> bool:  # type: ignore[override]
        """On the native path records wait in librdkafka's queue (queued.max.messages.kbytes)
        while the consumer queue's events are served: backpressure without a pause."""
        return self._native is not None

    def serve(self, timeout: float) -> Chunk | None:
        stray = self._poll_messages(self.consumer.consume(num_messages=1000, timeout=timeout))
        if stray is not None and self._early_native is not None:
            log.debug("dropped %d records the paused group consumer fetched", len(stray))
            return None
        if stray is not None and self._native is not None:
            self._native.heal()
        return stray

    def _native_errors(self, errors: list[tuple[int, str, int, int, str]], ends: dict[int, int]) -> None:
        for code, topic, partition, offset, text in errors:
            self._on_event(code, topic, partition, offset, text, fatal=code == ck.KafkaError._FATAL, ends=ends)

    def _on_event(
        self, code: int, topic: str, partition: int, offset: int, text: str, *, fatal: bool, ends: dict[int, int]
    ) -> None:
        """An error event from the records' queue: end of partition (for until-caught-up), a
        topic gone or a fatal error (raised), else a warning."""
        if code == ck.KafkaError._PARTITION_EOF:
            ends[self.registry.id_of(SourcePartition(topic, partition))] = offset
        elif code in (ck.KafkaError.UNKNOWN_TOPIC_OR_PART, ck.KafkaError._UNKNOWN_TOPIC):
            msg = f"topic {topic!r} disappeared from {self.bootstrap}: {text}"
            raise SourceMissing(msg, stream=topic)
        elif fatal:
            msg = f"Kafka consumer failed: {text}"
            raise SourceError(msg, stream=topic)
        else:
            log.warning("Kafka: %s [%s] at %s: %s", topic, partition, offset, text)

    def _poll_messages(self, messages: list[ck.Message]) -> Chunk | None:
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
            else:
                topic, partition, offset = (
                    str(message.topic()),
                    int(message.partition() or 0),
                    int(message.offset() or 0),
                )
                self._on_event(error.code(), topic, partition, offset, str(error), fatal=error.fatal(), ends=ends)
        return kept

    def seek(self, positions: dict[SourcePartition, int | None]) -> None:
        assigned = [sp for sp in positions if sp in self._assigned]
        targets = [ck.TopicPartition(sp.stream, int(sp.partition), positions[sp] or 0) for sp in assigned]
        self._start_offsets([tp for tp, sp in zip(targets, assigned, strict=True) if positions[sp] is None])
        reading = self._early if self._early is not None else self.consumer
        for tp in targets:
            for attempt in range(20):
                try:
                    reading.seek(tp)
                    break
                except ck.KafkaException as exc:
                    if attempt == 19:
                        msg = f"cannot seek {tp.topic}-{tp.partition} to {tp.offset}: {exc}"
                        raise SourceUnavailable(msg, stream=tp.topic) from exc
                    time.sleep(0.1)

    def assignment(self) -> list[SourcePartition]:
        if self._awaiting_verdict:
            return self._all_partitions()  # what is being read
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
        self._close_early()
        if self._native is not None:  # librdkafka wants the application's queues gone first
            self._native.close()
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


def _with_ends(chunk: Chunk | None, ends: dict[int, int]) -> Chunk:
    """``chunk`` (or an empty one) carrying end-of-partition events."""
    if chunk is None:
        return Chunk(values=[], pids=[], positions=[], nbytes=0, ends=ends)
    chunk.ends.update(ends)
    return chunk


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
