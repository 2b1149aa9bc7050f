"""Kafka source on aiokafka: an asyncio consumer in a thread of its own.

``KafkaSource(topic, client="aiokafka")`` (or ``STREAM_ETL_KAFKA_CLIENT=aiokafka``) reads
through this reader instead of librdkafka. The contract is the confluent reader's
(:mod:`connectors.kafka.source`):

- An ``AIOKafkaConsumer`` lives in an event loop that runs for the reader's life in thread
  ``se-aiokafka``, so heartbeats and fetches go on while the fetch thread is busy.
  ``poll`` hands ``getmany`` to that loop and waits for it.
- Rebalance callbacks (``ConsumerRebalanceListener``) run on the loop, but the run loop's
  listener must be called from the thread that polls (it takes the commit lock, clears the
  batcher): the callback posts the call to the polling thread, which runs it while it waits
  for its own request, and awaits the answer. On assignment the listener answers with the
  positions stored in the primary sink; the reader seeks to them (stored + 1), and only
  partitions with no stored position use ``start_from``.
- No auto commit. Group offsets are committed after each sink commit, for lag tooling only.
- Until-caught-up ends come from fetch responses (the partition's high watermark once the
  consumer's position reached it), never from ListOffsets alone (see the Tansu quirks in
  docs/ARCHITECTURE.md); the start-up estimate uses a short assigned probe consumer.

Columnar: ``getmany`` already groups records by partition, so each partition's values and
offsets are taken with C-level ``map(attrgetter(...))`` calls; no Python loop per record.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any, TypeVar

import pyarrow as pa

from connectors.kafka.aio_options import aiokafka_options
from connectors.kafka.config import TUNED_CONSUMER_DEFAULTS, KafkaSourceConfig
from connectors.kafka.metadata import metadata_columns
from stream_etl.context import RunContext
from stream_etl.errors import ConfigurationError, SourceError, SourceMissing, SourceUnavailable
from stream_etl.records import Batch, Chunk, PartitionRegistry, SourcePartition
from stream_etl.sources import AssignmentListener, SourceReader
from stream_etl.stage import name_os_thread

try:
    from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
    from aiokafka.errors import KafkaError
    from aiokafka.protocol.group import LeaveGroupRequest
except ImportError as exc:  # pragma: no cover - depends on the install
    msg = "KafkaSource(client='aiokafka') needs aiokafka: pip install 'stream-etl[aiokafka]'"
    raise ImportError(msg) from exc

log = logging.getLogger(__name__)
T = TypeVar("T")

_value, _offset, _key = attrgetter("value"), attrgetter("offset"), attrgetter("key")
_timestamp, _headers = attrgetter("timestamp"), attrgetter("headers")


@dataclass(frozen=True, slots=True)
class _Call:
    """A call the event loop asks the polling thread to make."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: concurrent.futures.Future[Any]

    def run(self) -> None:
        if self.future.set_running_or_notify_cancel():
            try:
                self.future.set_result(self.fn(*self.args))
            except BaseException as exc:  # handed back to the awaiting callback
                self.future.set_exception(exc)


class _EndWatch:
    """Finds partitions whose end was reached, from fetch responses.

    A broker's high watermark can understate the end (Tansu answers the last record batch's
    base offset + 1), so the watermark alone cannot say. aiokafka accepts a fetch response only
    when it was fetched at the partition's current position, and records it brings stay
    buffered (the position does not move) until ``getmany`` returns them. So: if a response
    arrived after the position last moved, and the ``getmany`` that followed returned nothing
    for the partition with the buffer drained, that response was empty and the position is
    the partition's end.
    """

    def __init__(self) -> None:
        self._moved: dict[Any, tuple[int, float]] = {}

    @staticmethod
    def stamps(consumer: Any) -> dict[Any, int | None]:
        """Arrival time (ms) of each assigned partition's last fetch response; take before ``getmany``."""
        return {tp: consumer.last_poll_timestamp(tp) for tp in consumer.assignment()}

    async def reached(
        self, consumer: Any, stamps: dict[Any, int | None], data: dict[Any, list[Any]], drained: bool
    ) -> dict[Any, int]:
        now_ms = time.time() * 1000
        ends: dict[Any, int] = {}
        assigned = consumer.assignment()
        for tp, stamp in stamps.items():
            if stamp is None or tp not in assigned:
                continue
            position = await consumer.position(tp)
            moved = self._moved.get(tp)
            if moved is None or moved[0] != position:
                self._moved[tp] = (position, now_ms)
            elif drained and not data.get(tp) and stamp > moved[1]:
                ends[tp] = position
        return ends


async def _leave_group(coordinator: Any) -> None:
    """Send LeaveGroup for the coordinator's member, whatever its generation number."""
    if coordinator.member_id and getattr(coordinator, "_group_instance_id", None) is None:
        try:
            await coordinator._send_req(LeaveGroupRequest(coordinator.group_id, coordinator.member_id))
        except KafkaError as exc:
            log.warning("leaving consumer group %s failed: %r", coordinator.group_id, exc)
    coordinator.reset_generation()


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, reader: AioKafkaReader) -> None:
        self.reader = reader

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.reader._revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.reader._assigned_now(list(assigned))


class AioKafkaReader(SourceReader):
    """The aiokafka consumer behind ``KafkaSource(client="aiokafka")``."""

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
        self.until_caught_up = ctx.mode == "until_caught_up"
        options = {
            **TUNED_CONSUMER_DEFAULTS,
            **ctx.settings.kafka_config(),
            **ctx.settings.kafka_consumer_config(),
            **config.options,
        }
        self.client_kwargs: dict[str, Any] = {
            "client_id": f"stream-etl-{ctx.app_id}",
            **aiokafka_options(options),
            "bootstrap_servers": bootstrap,
            "enable_auto_commit": False,
        }
        self.group_id = config.group_id or ctx.app_id
        self._counts: dict[str, int] = {}
        self._assigned: set[SourcePartition] = set()
        self._assigned_lock = threading.Lock()
        self._reported_ends: dict[SourcePartition, int] = {}
        self._ends = _EndWatch()
        #: Partitions this reader has positioned (stored + 1 or the start position). aiokafka
        #: starts fetching a partition as soon as it is assigned, from its committed offset or
        #: auto_offset_reset, and getmany may return those records before the listener's seek:
        #: records of partitions not positioned yet are dropped (the seek reads them again).
        self._positioned: set[Any] = set()
        self._to_commit: dict[SourcePartition, int] = {}
        self._pending_commit: concurrent.futures.Future[None] | None = None
        self._failure: BaseException | None = None
        self._subscribed = False
        self._closed = False
        self._calls: collections.deque[_Call] = collections.deque()
        self._wake = threading.Condition()
        self._consumer: Any = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="stream-etl-aiokafka", daemon=True)
        self._thread.start()
        try:
            self._call(self._open())
        except BaseException:
            self._stop_loop()
            raise

    # The event loop's thread -----------------------------------------------------------

    def _run_loop(self) -> None:
        name_os_thread("se-aiokafka")
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def _stop_loop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for it, making the calls the loop posts meanwhile."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        future.add_done_callback(lambda _: self._notify())
        while True:
            with self._wake:
                while not self._calls and not future.done():
                    self._wake.wait()
                item = self._calls.popleft() if self._calls else None
            if item is not None:
                item.run()
            elif future.done():
                return future.result()

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    async def _in_polling_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Have the polling thread call ``fn(*args)`` (the run loop's listener) and await it."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._wake:
            self._calls.append(_Call(fn, args, future))
            self._wake.notify_all()
        return await asyncio.wrap_future(future)

    def _new_consumer(self, **overrides: Any) -> Any:
        return AIOKafkaConsumer(**{**self.client_kwargs, **overrides})

    async def _open(self) -> None:
        consumer = self._new_consumer(group_id=self.group_id)
        try:
            await asyncio.wait_for(consumer.start(), timeout=self.config.connect_timeout_s)
            cluster = await consumer._client.fetch_all_metadata()
        except (KafkaError, OSError, TimeoutError) as exc:
            await consumer.stop()
            msg = (
                f"cannot reach Kafka at {self.bootstrap} ({exc!r}); check the address, "
                "or start the local stack with `stream-etl dev up`"
            )
            raise SourceUnavailable(msg) from exc
        self._consumer = consumer
        for topic in self.config.topics:
            partitions = cluster.partitions_for_topic(topic)
            if not partitions:
                known = sorted(t for t in cluster.topics() if not t.startswith("__"))[:20]
                await consumer.stop()
                msg = f"topic {topic!r} does not exist on {self.bootstrap}; existing topics: {known}"
                raise SourceMissing(msg, stream=topic)
            self._counts[topic] = len(partitions)
            self.registry.ids_of(SourcePartition(topic, p) for p in range(len(partitions)))
        log.info("Kafka %s (aiokafka): %s", self.bootstrap, self._counts)

    def _all_partitions(self) -> list[SourcePartition]:
        return [SourcePartition(t, p) for t, n in self._counts.items() for p in range(n)]

    # Assignment (on the loop) ----------------------------------------------------------

    async def _assigned_now(self, tps: list[TopicPartition]) -> None:
        try:
            sps = [SourcePartition(tp.topic, tp.partition) for tp in tps]
            self._positioned.difference_update(tps)
            self.registry.ids_of(sps)
            resume: dict[SourcePartition, int] = await self._in_polling_thread(self.listener.on_assigned, sps)
            fresh = []
            for tp, sp in zip(tps, sps, strict=True):
                if sp in resume:
                    self._consumer.seek(tp, resume[sp])
                    self._positioned.add(tp)
                else:
                    fresh.append(tp)
            await self._seek_start(fresh)
            with self._assigned_lock:
                self._assigned.update(sps)
            for sp in sps:
                self._reported_ends.pop(sp, None)
        except BaseException as exc:
            # aiokafka logs and swallows listener errors: keep it, and fail the next poll, so
            # the consumer never reads from a position the sink did not give.
            self._failure = exc
            raise

    async def _revoked(self, tps: list[TopicPartition]) -> None:
        sps = [SourcePartition(tp.topic, tp.partition) for tp in tps]
        if not sps:
            return
        with self._assigned_lock:
            self._assigned.difference_update(sps)
        self._positioned.difference_update(tps)
        try:
            await self._in_polling_thread(self.listener.on_revoked, sps)
        except BaseException as exc:
            self._failure = exc
            raise

    async def _seek_start(self, tps: list[TopicPartition]) -> None:
        """Position partitions without a stored position at the configured start.

        Offsets are looked up first and every seek is the synchronous ``seek``, marked
        positioned in the same loop step (see ``_positioned``)."""
        if not tps:
            return
        start = self.config.start_from
        consumer = self._consumer
        sps = [SourcePartition(tp.topic, tp.partition) for tp in tps]
        if isinstance(start, datetime):
            millis = int(start.timestamp() * 1000)
            found = await consumer.offsets_for_times(dict.fromkeys(tps, millis))
            ends = await consumer.end_offsets(tps)
            offsets = {tp: found[tp].offset if found.get(tp) is not None else ends[tp] for tp in tps}
        elif start == "earliest":
            offsets = await consumer.beginning_offsets(tps)
        else:  # latest: the true end from fetch responses (see module docstring)
            true_ends = await self._true_ends(sps)
            ends = await consumer.end_offsets(tps)
            offsets = {tp: true_ends.get(sp, ends[tp]) for tp, sp in zip(tps, sps, strict=True)}
        for tp in tps:
            if tp in consumer.assignment():
                consumer.seek(tp, offsets[tp])
                self._positioned.add(tp)

    # SourceReader -------------------------------------------------------------------------

    def start(self) -> None:
        self._call(self._start())

    async def _start(self) -> None:
        if self.config.assignment == "direct":
            tps = [TopicPartition(sp.stream, int(sp.partition)) for sp in self._all_partitions()]
            self._consumer.assign(tps)
            await self._assigned_now(tps)
        else:
            self._consumer.subscribe(topics=list(self.config.topics), listener=_Rebalance(self))
            self._subscribed = True

    def poll(self, max_records: int, timeout: float) -> Chunk | None:
        self._raise_failure()
        data, ends = self._call(self._fetch(max_records, max(int(timeout * 1000), 0)))
        self._raise_failure()
        if not data and not ends:
            return None
        values: list[bytes | None] = []
        positions: list[int] = []
        pids: list[int] = []
        wanted = self.config.metadata
        metadata: dict[str, list[Any]] = {name: [] for name in ("timestamp", "key", "headers") if name in wanted}
        for tp, records in data.items():
            values += map(_value, records)
            positions += map(_offset, records)
            pids += [self.registry.id_of(SourcePartition(tp.topic, tp.partition))] * len(records)
            if metadata:
                if "timestamp" in metadata:
                    metadata["timestamp"] += map(_timestamp, records)
                if "key" in metadata:
                    metadata["key"] += map(_key, records)
                if "headers" in metadata:
                    metadata["headers"] += map(_headers, records)
        try:
            nbytes = sum(map(len, values))  # type: ignore[arg-type]
        except TypeError:  # tombstones (None values)
            nbytes = sum(len(v) for v in values if v is not None)
        return Chunk(values=values, pids=pids, positions=positions, nbytes=nbytes, metadata=metadata, ends=ends)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            if isinstance(failure, SourceError):
                raise failure
            msg = f"handling a partition assignment failed: {failure!r}"
            raise SourceError(msg) from failure

    async def _fetch(self, max_records: int, timeout_ms: int) -> tuple[dict[Any, list[Any]], dict[int, int]]:
        stamps = _EndWatch.stamps(self._consumer) if self.until_caught_up else {}
        try:
            data: dict[Any, list[Any]] = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        except KafkaError as exc:
            if not getattr(exc, "retriable", False):
                msg = f"Kafka consumer failed: {exc!r}"
                raise SourceError(msg) from exc
            log.warning("Kafka: %r", exc)
            return {}, {}
        if any(tp not in self._positioned for tp in data):  # read before the listener's seek
            data = {tp: records for tp, records in data.items() if tp in self._positioned}
        if not self.until_caught_up:
            return data, {}
        drained = sum(map(len, data.values())) < max_records
        ends: dict[int, int] = {}
        for tp, position in (await self._ends.reached(self._consumer, stamps, data, drained)).items():
            if tp not in self._positioned:
                continue
            sp = SourcePartition(tp.topic, tp.partition)
            if self._reported_ends.get(sp) != position:  # once per time it gets there, as librdkafka's EOF
                self._reported_ends[sp] = position
                ends[self.registry.id_of(sp)] = position
                log.debug("%s: end reached at %d", sp, position)
        return data, ends

    def seek(self, positions: dict[SourcePartition, int | None]) -> None:
        self._call(self._seek(positions))

    async def _seek(self, positions: dict[SourcePartition, int | None]) -> None:
        with self._assigned_lock:
            assigned = [sp for sp in positions if sp in self._assigned]
        fresh = []
        for sp in assigned:
            tp = TopicPartition(sp.stream, int(sp.partition))
            target = positions[sp]
            if target is None:
                self._positioned.discard(tp)
                fresh.append(tp)
            else:
                self._consumer.seek(tp, target)
                self._positioned.add(tp)
            self._reported_ends.pop(sp, None)
        await self._seek_start(fresh)

    def assignment(self) -> list[SourcePartition]:
        with self._assigned_lock:
            return sorted(self._assigned)

    def end_positions(self) -> dict[SourcePartition, int]:
        return self._call(self._true_ends(self._all_partitions()))

    def rough_end_positions(self) -> dict[SourcePartition, int]:
        return {
            sp: high for sp, (low, high) in self._call(self._watermarks(self._all_partitions())).items() if high > low
        }

    async def _watermarks(self, partitions: list[SourcePartition]) -> dict[SourcePartition, tuple[int, int]]:
        tps = [TopicPartition(sp.stream, int(sp.partition)) for sp in partitions]
        try:
            low = await self._consumer.beginning_offsets(tps)
            high = await self._consumer.end_offsets(tps)
        except KafkaError as exc:
            msg = f"cannot read the offsets of {self.config.topics} from {self.bootstrap}: {exc!r}"
            raise SourceUnavailable(msg) from exc
        return {sp: (low[tp], high[tp]) for sp, tp in zip(partitions, tps, strict=True)}

    async def _true_ends(self, partitions: list[SourcePartition]) -> dict[SourcePartition, int]:
        """Ends of the non-empty ``partitions``, read from fetch responses: a probe consumer
        reads from just before ListOffsets' answer until a fetch comes back empty (:class:`_EndWatch`)."""
        candidates = {
            sp: max(high - 1, low) for sp, (low, high) in (await self._watermarks(partitions)).items() if high > low
        }
        if not candidates:
            return {}
        probe = self._new_consumer(group_id=None)
        ends: dict[SourcePartition, int] = {}
        try:
            await probe.start()
            tps = {sp: TopicPartition(sp.stream, int(sp.partition)) for sp in candidates}
            probe.assign(list(tps.values()))
            for sp, at in candidates.items():
                probe.seek(tps[sp], at)
            watch = _EndWatch()
            deadline = time.monotonic() + self.config.connect_timeout_s
            while len(ends) < len(candidates) and time.monotonic() < deadline:
                stamps = watch.stamps(probe)
                data = await probe.getmany(timeout_ms=100, max_records=10_000)
                drained = sum(map(len, data.values())) < 10_000
                for tp, position in (await watch.reached(probe, stamps, data, drained)).items():
                    ends.setdefault(SourcePartition(tp.topic, tp.partition), position)
        except KafkaError as exc:
            msg = f"cannot read the ends of {self.config.topics} from {self.bootstrap}: {exc!r}"
            raise SourceUnavailable(msg) from exc
        finally:
            await probe.stop()
        missing = [str(sp) for sp in candidates if sp not in ends]
        if missing:
            msg = f"could not find the end of {missing} within {self.config.connect_timeout_s}s"
            raise SourceUnavailable(msg)
        log.debug("true ends %s (ListOffsets said %s)", ends, candidates)
        return ends

    def commit(self, positions: dict[SourcePartition, int]) -> None:
        self._to_commit.update(positions)
        offsets = self._offsets()
        if offsets and (self._pending_commit is None or self._pending_commit.done()):
            self._pending_commit = asyncio.run_coroutine_threadsafe(self._commit(offsets), self._loop)

    def _offsets(self) -> dict[TopicPartition, int]:
        """Group offsets = stored positions + 1 of the assigned partitions."""
        with self._assigned_lock:
            return {
                TopicPartition(sp.stream, int(sp.partition)): position + 1
                for sp, position in self._to_commit.items()
                if sp in self._assigned
            }

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        """For lag tooling only; failures are harmless."""
        try:
            await self._consumer.commit(offsets)
        except (KafkaError, AssertionError, ValueError) as exc:
            log.debug("committing group offsets for lag tooling failed: %r", exc)

    def metadata_columns(self, batch: Batch, rows: pa.Int32Array) -> dict[str, pa.Array]:
        return metadata_columns(self.config.metadata, self.registry, batch, rows)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            try:
                if self._subscribed and not self.assignment():
                    self._finish_join()
                if self._pending_commit is not None:
                    concurrent.futures.wait([self._pending_commit], timeout=10)
                offsets = self._offsets()
                if offsets:
                    self._call(self._commit(offsets))
            finally:
                self._call(self._stop())
        finally:
            self._stop_loop()

    async def _stop(self) -> None:
        """Stop the consumer, leaving the group even at generation 0.

        aiokafka sends LeaveGroup only for generation > 0, and Tansu numbers a group's first
        generation 0: the member would linger for session.timeout.ms, delaying the next
        worker's join and refusing offset commits (UNKNOWN_MEMBER_ID). The coordinator's own
        leave step runs after its heartbeat stopped; this replaces it for that case only."""
        coordinator = getattr(self._consumer, "_coordinator", None)
        if coordinator is not None and coordinator.generation == 0:
            coordinator._maybe_leave_group = lambda: _leave_group(coordinator)
        await self._consumer.stop()

    def _finish_join(self) -> None:
        """Let a pending group join finish before leaving (see the confluent reader: Tansu never
        expires a member that disappears mid-join). Records read meanwhile are dropped."""
        session_s = int(self.client_kwargs.get("session_timeout_ms", 10_000)) / 1000
        deadline = time.monotonic() + min(session_s + 5, 30)
        while not self.assignment() and self._failure is None and time.monotonic() < deadline:
            try:
                self._call(self._fetch(1000, 200))
            except SourceError as exc:
                log.warning("finishing the group join before closing failed: %s", exc)
                return

    def __repr__(self) -> str:
        return f"<AioKafkaReader {self.config.topics} {self.bootstrap}>"
