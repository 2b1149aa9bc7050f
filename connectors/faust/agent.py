"""Faust interop: an existing faust-streaming app hands a topic's events to a stream-etl topology.

::

    app = faust.App("orders-app", broker="kafka://127.0.0.1:9092")
    orders = app.topic("orders", value_type=bytes, value_serializer="raw")
    topology = Topology("faust-orders")
    topology.source(FaustSource(), format=JsonFormat(ORDER_SCHEMA)).filter("amount >= 0").sink(DeltaSink(uri))
    stream_etl_agent(app, orders, topology, app_id="faust-orders")

How it keeps exactly-once:

- The agent takes events in groups (``take_events``) and hands their raw values with their
  (topic, partition, offset) to a :class:`FaustReader`, the source of an ordinary stream-etl
  :class:`~stream_etl.runloop.RunLoop` that runs in a thread beside the Faust app. Batching,
  decoding, steps, dead letters and commits are the run loop's: each sink stores the offsets
  with the rows in one commit, and ``plan_commit`` drops every record at or below a sink's
  stored position, so a replay (Faust restarting from older offsets, a new consumer group
  reading from the beginning) adds nothing.
- The stream is ``noack`` and every message holds one more reference until the primary sink
  has committed its offset (``take_events`` acks each batch when it is handed over): an event
  is acknowledged to Faust only then, so Faust's own committed offsets never run ahead of the sink.
- A commit conflict (another writer moved the positions) makes the run loop re-seek: the
  reader replays the records it still holds above the stored positions.

Limits: continuous runs only (no until-caught-up), stateful steps (dedupe, windows) are not
supported (their state follows assignments the Faust app owns), and Faust delivers events one
by one, so taking each event's value and offset is a Python loop per record in the agent
(everything after it is columnar).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from stream_etl.context import RunContext
from stream_etl.errors import ConfigurationError
from stream_etl.records import Chunk, PartitionRegistry, SourcePartition
from stream_etl.runloop import RunLoop
from stream_etl.settings import Settings
from stream_etl.sources import AssignmentListener, Source, SourceReader
from stream_etl.topology import Topology

log = logging.getLogger(__name__)


class FaustSource(Source):
    """The source of a topology fed by :func:`stream_etl_agent` (a placeholder until then)."""

    def __init__(self) -> None:
        self.reader: FaustReader | None = None

    def describe(self) -> str:
        return "faust agent"

    def open(self, ctx: RunContext, listener: AssignmentListener) -> FaustReader:
        if ctx.mode != "continuous":
            msg = "a Faust-fed topology runs continuously, inside the Faust app: use stream_etl_agent"
            raise ConfigurationError(msg)
        self.reader = FaustReader(listener)
        return self.reader


class FaustReader(SourceReader):
    """Chunks handed over by the agent; records are kept until the primary sink commits them."""

    def __init__(self, listener: AssignmentListener) -> None:
        self.listener = listener
        self.registry = PartitionRegistry()
        self._chunks: queue.Queue[Chunk] = queue.Queue()
        self._lock = threading.Lock()
        self._known: set[SourcePartition] = set()
        #: Records handed over and not yet committed, per partition: (position, value) pairs.
        self._held: dict[SourcePartition, list[tuple[int, bytes | None]]] = {}
        self._committed: dict[SourcePartition, int] = {}

    def feed(self, values: list[bytes | None], topics: list[str], partitions: list[int], offsets: list[int]) -> None:
        """From the agent: one group of events, as parallel lists."""
        sps = [SourcePartition(t, p) for t, p in zip(topics, partitions, strict=True)]
        pids = [self.registry.id_of(sp) for sp in sps]
        with self._lock:
            for sp, offset, value in zip(sps, offsets, values, strict=True):
                self._held.setdefault(sp, []).append((offset, value))
        nbytes = sum(len(v) for v in values if v is not None)
        self._chunks.put(Chunk(values=values, pids=pids, positions=offsets, nbytes=nbytes))

    def committed_positions(self) -> dict[SourcePartition, int]:
        with self._lock:
            return dict(self._committed)

    def poll(self, max_records: int, timeout: float) -> Chunk | None:
        try:
            chunk = self._chunks.get(timeout=timeout)
        except queue.Empty:
            return None
        fresh = {self.registry.partition(pid) for pid in set(chunk.pids)} - self._known
        if fresh:  # partitions seen for the first time: the run loop reads their stored positions
            self._known.update(fresh)
            resume = self.listener.on_assigned(sorted(fresh))
            # What the sink already stores is committed: release it (its events get acked);
            # the run loop drops those records from the batch (plan_commit).
            self.commit({sp: position - 1 for sp, position in resume.items()})
        return chunk

    def seek(self, positions: dict[SourcePartition, int | None]) -> None:
        """After a commit conflict: hand over again what is held from each position on."""
        while not self._chunks.empty():  # queued chunks are held too: replayed below
            self._chunks.get_nowait()
        with self._lock:
            for sp, start in positions.items():
                held = [(o, v) for o, v in self._held.get(sp, []) if start is None or o >= start]
                if held:
                    pid = self.registry.id_of(sp)
                    values = [v for _, v in held]
                    self._chunks.put(
                        Chunk(
                            values=values,
                            pids=[pid] * len(held),
                            positions=[o for o, _ in held],
                            nbytes=sum(len(v) for v in values if v is not None),
                        )
                    )

    def assignment(self) -> list[SourcePartition]:
        return sorted(self._known)

    def end_positions(self) -> dict[SourcePartition, int]:
        return {}

    def commit(self, positions: dict[SourcePartition, int]) -> None:
        """The primary sink committed ``positions``: release what they cover."""
        with self._lock:
            for sp, position in positions.items():
                self._committed[sp] = max(position, self._committed.get(sp, -1))
                self._held[sp] = [(o, v) for o, v in self._held.get(sp, []) if o > position]

    def close(self) -> None:
        pass


class FaustBridge:
    """A run loop in a thread of its own, fed by a Faust agent."""

    def __init__(self, topology: Topology, *, app_id: str, settings: Settings | None = None) -> None:
        if topology.stateful_steps():
            names = [s.name for s in topology.stateful_steps()]
            msg = f"steps {names} keep state; a Faust-fed topology supports stateless steps only"
            raise ConfigurationError(msg)
        self.source = FaustSource()
        self.loop = RunLoop(
            topology.with_connectors(source=self.source),
            RunContext(app_id=app_id, settings=settings or Settings.from_environment(), mode="continuous"),
        )
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="stream-etl-faust", daemon=True)
        self._started = threading.Event()

    def start(self, timeout_s: float = 60.0) -> FaustReader:
        if not self._thread.is_alive() and self.source.reader is None:
            self._thread.start()
        self._started.wait(timeout_s)
        self.check()
        if self.source.reader is None:
            msg = "the stream-etl run loop did not open its sinks in time"
            raise ConfigurationError(msg)
        return self.source.reader

    def _run(self) -> None:
        original = self.source.open

        def open_and_signal(ctx: RunContext, listener: AssignmentListener) -> FaustReader:
            reader = original(ctx, listener)
            self._started.set()
            return reader

        self.source.open = open_and_signal  # type: ignore[method-assign]
        try:
            self.loop.run()
        except BaseException as exc:  # raised in the agent by check()
            self.error = exc
            log.exception("the stream-etl run loop behind the Faust agent failed")
        finally:
            self._started.set()

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        self.loop.stop()
        if self._thread.is_alive():
            self._thread.join(timeout=60)


def _columns(events: Sequence[Any]) -> tuple[list[bytes | None], list[str], list[int], list[int]]:
    messages = [e.message for e in events]
    return (
        [m.value for m in messages],
        [m.topic for m in messages],
        [m.partition for m in messages],
        [m.offset for m in messages],
    )


def stream_etl_agent(
    app: Any,
    topic: Any,
    topology: Topology,
    *,
    app_id: str,
    max_batch_records: int = 10_000,
    within_s: float = 1.0,
    settings: Settings | None = None,
    name: str | None = None,
) -> Any:
    """Register a Faust agent on ``app`` that runs ``topology``'s steps and sinks over ``topic``.

    ``topic`` is a Faust topic (or its name) whose values are the records' raw bytes
    (``value_serializer="raw"``); ``topology`` is an ordinary stream-etl topology whose source
    is replaced (use :class:`FaustSource`); ``app_id`` keys the positions stored in its sinks.
    Returns the agent. The bridge is stopped when the app stops.
    """
    bridge = FaustBridge(topology, app_id=app_id, settings=settings)

    async def agent(stream: Any) -> None:
        reader = await asyncio.to_thread(bridge.start)
        pending: list[Any] = []
        lock = asyncio.Lock()

        async def ack_committed() -> None:
            async with lock:
                pending[:] = await _ack_committed(stream, pending, reader.committed_positions)

        async def sweep() -> None:  # acks events committed after the last group came in
            while True:
                await asyncio.sleep(within_s)
                await ack_committed()

        sweeper = asyncio.create_task(sweep())
        try:
            async for events in stream.noack().take_events(max_batch_records, within=within_s):
                # take_events acks every event of the batch as soon as this body is done, noack or
                # not, which let Faust commit offsets the sink had not stored yet (a SIGKILL then lost
                # them). One more reference per message: its offset is released only when both that
                # ack and ours (after the primary sink's commit, _ack_committed) have come.
                for event in events:
                    event.message.incref()
                bridge.check()
                reader.feed(*_columns(events))
                async with lock:
                    pending.extend(events)
                await ack_committed()
        finally:
            sweeper.cancel()
            await asyncio.to_thread(bridge.stop)

    agent.__name__ = name or f"stream_etl_{topology.name}".replace("-", "_")
    registered = app.agent(topic, name=name or agent.__name__)(agent)
    registered.stream_etl_bridge = bridge
    return registered


async def _ack_committed(
    stream: Any, pending: list[Any], committed: Callable[[], dict[SourcePartition, int]]
) -> list[Any]:
    """Acknowledge the events whose offsets the primary sink has committed; keep the rest."""
    positions = committed()
    kept = []
    for event in pending:
        message = event.message
        stored = positions.get(SourcePartition(message.topic, message.partition))
        if stored is not None and message.offset <= stored:
            await stream.ack(event)
        else:
            kept.append(event)
    return kept
