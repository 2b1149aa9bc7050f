"""The fetch thread: poll the source, close micro-batches, queue them.

It runs beside the run loop so that the next batch is read while the current one
is decoded, transformed and committed (the fetch thread does the per-message work
that needs the GIL; Arrow's JSON parse, which does not, runs in the prepare
thread, so polling goes on meanwhile: see prepare.py).

Backpressure: the queue holds at most ``prefetch_batches`` batches, and the raw bytes
read and not yet committed are bounded by ``max_in_flight_bytes``
(:class:`~stream_etl.batcher.BatchLimits`). When the queue is full or the bound is
reached, the thread pauses the source (Kafka: ``consumer.pause``, so librdkafka stops
fetching and drops its prefetched records instead of filling its own queue) and keeps
polling, which serves rebalance callbacks and keeps the consumer in its group; it
resumes once the run loop's commits release bytes. A reader that ``can_hold_back`` (the
Kafka source's native path) is not paused: the thread serves its events without taking
records, and the client's bounded queue holds what it fetched (no refetch, no resume delay).

Why a thread and not asyncio: librdkafka's consume, Arrow's JSON reader and the
Delta writer all release the GIL, so a plain thread overlaps them on separate
cores; confluent_kafka.aio runs each consume in an executor thread anyway, and
rebalance callbacks must run in the thread that polls.

The thread is also the source's :class:`~stream_etl.sources.AssignmentListener`.
Every rebalance or re-seek starts a new *generation*; batches of older
generations are dropped by the run loop instead of being committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from stream_etl import faults
from stream_etl.batcher import Batcher, BatchLimits
from stream_etl.errors import ConfigurationError
from stream_etl.records import Batch, Chunk, SourcePartition
from stream_etl.retry import retry_transient
from stream_etl.sinks import SinkWriter
from stream_etl.sources import SourceReader
from stream_etl.stage import WAIT_S, Stage, name_os_thread
from stream_etl.state import StateKeeper

log = logging.getLogger(__name__)


class Fetcher(Stage[Batch]):
    """Polls one source reader and feeds closed batches to the prepare stage."""

    def __init__(
        self,
        primary: SinkWriter,
        limits: BatchLimits,
        keeper: StateKeeper | None = None,
        *,
        retry_timeout_s: float = 600.0,
    ) -> None:
        super().__init__("stream-etl-fetch", limits.prefetch_batches)
        self.primary = primary
        self.retry_timeout_s = retry_timeout_s
        self.keeper = keeper
        self.batcher = Batcher(limits)
        self.limits = limits
        #: Raw bytes of closed batches not yet released by the run loop, per generation
        #: (a new generation drops the older ones: their batches are discarded).
        self._in_flight: dict[int, int] = {}
        self.paused = False
        #: How many times the source was paused (backpressure), for the run summary.
        self.pauses = 0
        #: Held by the run loop while it commits; a revoke waits for it.
        self.commit_lock = threading.Lock()
        self.generation = 0
        self.reader: SourceReader | None = None
        self._reseek = threading.Event()
        self._lock = threading.Lock()
        self._pending_commit: dict[SourcePartition, int] = {}
        #: Next position the pipeline needs per assigned partition (for re-seeks).
        self._next: dict[SourcePartition, int] = {}
        #: Partition ids at their end (until-caught-up runs get end-of-partition events).
        self._at_end: set[int] = set()
        #: Stored positions seen at assignment, for run-until-caught-up.
        self.assigned_positions: dict[SourcePartition, int] = {}

    @property
    def stateful(self) -> bool:
        """Stateful steps resume from snapshots: readers must not read ahead of an assignment."""
        return self.keeper is not None

    def attach(self, reader: SourceReader) -> None:
        self.reader = reader

    # AssignmentListener ------------------------------------------------------

    def on_assigned(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, int]:
        stored = self._stored(partitions)
        committed = {sp: position + 1 for sp, position in stored.items()}
        # With stateful steps, read from their newest snapshot: records after it rebuild state.
        resume = self.keeper.resume(partitions, stored, self.generation) if self.keeper else committed
        with self._lock:
            self._next.update(resume)
            self.assigned_positions.update(committed)
        log.info("assigned %s; resuming at %s", [str(p) for p in partitions], {str(k): v for k, v in resume.items()})
        return resume

    def resume_cursors(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, str]:
        if not self.primary.stores_cursors:
            msg = "this source resumes from cursors, and the topology's primary sink cannot store them"
            raise ConfigurationError(msg)
        found: dict[SourcePartition, str] = retry_transient(
            lambda: self.primary.read_cursors(partitions),
            "reading stored cursors",
            self.stopping,
            self.retry_timeout_s,
        )
        return found

    def on_revoked(self, partitions: Sequence[SourcePartition]) -> None:
        with self.commit_lock:
            self.generation += 1
            self._forget_older_generations()
        self.batcher.clear()
        self._at_end.clear()
        self.drain()
        if self.keeper is not None:
            self.keeper.revoke(partitions, self.generation)
        with self._lock:
            for sp in partitions:
                self._next.pop(sp, None)
        log.info("revoked %s", [str(p) for p in partitions])

    # Called by the run loop -------------------------------------------------

    def release(self, batch: Batch) -> None:
        """The run loop is done with ``batch`` (committed or dropped): its bytes leave the budget."""
        self.release_bytes(batch.generation, batch.nbytes)

    def release_bytes(self, generation: int, nbytes: int) -> None:
        """:meth:`release` for a batch whose records are gone already (a staged batch)."""
        with self._lock:
            left = self._in_flight.get(generation, 0) - nbytes
            if left > 0:
                self._in_flight[generation] = left
            else:
                self._in_flight.pop(generation, None)

    def in_flight_bytes(self) -> int:
        """Raw bytes read and not yet committed: closed batches plus the open one."""
        with self._lock:
            closed = sum(self._in_flight.values())
        return closed + self.batcher.nbytes

    def _forget_older_generations(self) -> None:
        with self._lock:
            for generation in [g for g in self._in_flight if g < self.generation]:
                del self._in_flight[generation]

    def _throttle(self, reader: SourceReader, pause: bool) -> None:
        if reader.can_hold_back:  # the reader just stops taking records (see SourceReader.serve)
            if pause and not self.paused:
                self.pauses += 1
            self.paused = pause
            return
        if pause:
            reader.pause()  # every time: partitions assigned meanwhile start unpaused
            if not self.paused:
                self.pauses += 1
                log.debug(
                    "pausing the source: %d bytes in flight, queue full: %s", self.in_flight_bytes(), self.queue.full()
                )
        elif self.paused:
            reader.resume()
            log.debug("resuming the source")
        self.paused = pause

    def _poll_while_waiting(self, reader: SourceReader) -> None:
        """The next stage is behind: pause the source, but keep polling (callbacks, group liveness)."""
        self._throttle(reader, pause=True)
        if reader.can_hold_back:
            chunk = reader.serve(0)
        elif not reader.pausable:
            return  # polling would read on: wait without it
        else:
            chunk = reader.poll(max(min(self.batcher.room(), reader.poll_records), 1), 0)
        if chunk is not None:  # fetched before the pause took effect, or from a new assignment
            self.batcher.add(chunk)
            self._note_ends(chunk)

    def request_reseek(self) -> None:
        """Drop everything read so far and read again from the stored positions."""
        self._reseek.set()

    def committed(self, positions: dict[SourcePartition, int]) -> None:
        """The primary sink committed ``positions``: remember them, tell the source."""
        with self._lock:
            for sp, position in positions.items():
                if sp in self._next:
                    self._next[sp] = max(self._next[sp], position + 1)
            self._pending_commit.update(positions)

    def _stored(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, int]:
        found: dict[SourcePartition, int] = retry_transient(
            lambda: self.primary.read_positions(partitions),
            "reading stored positions",
            self.stopping,
            self.retry_timeout_s,
        )
        return found

    def run(self) -> None:
        if self.reader is None:
            msg = "attach() a source reader before starting the fetch thread"
            raise RuntimeError(msg)
        name_os_thread("se-fetch")
        if self.reader.awaiting_assignment:  # a small first batch would only add a commit
            self.batcher.full_size()
        try:
            while not self.stopping.is_set():
                self._step(self.reader)
        except BaseException as exc:  # handed to the run loop, which re-raises it
            self.error = exc
        finally:
            try:
                if self._pending_commit:
                    self.reader.commit(self._pending_commit)
                self.reader.close()
            except Exception:
                log.exception("closing the source failed")

    def _step(self, reader: SourceReader) -> None:
        if self._reseek.is_set():
            self._do_reseek(reader)
        if self._pending_commit:
            with self._lock:
                pending, self._pending_commit = self._pending_commit, {}
            reader.commit(pending)
        over = self.in_flight_bytes() >= self.limits.in_flight_bytes
        self._throttle(reader, pause=over)
        if over and reader.can_hold_back:
            chunk = reader.serve(min(self.batcher.seconds_left(), WAIT_S))
        elif over and not reader.pausable:
            chunk = None  # a source that cannot pause is simply not read
            time.sleep(min(self.batcher.seconds_left(), WAIT_S))
        else:  # a paused source returns nothing new, but polling serves its callbacks
            chunk = reader.poll(
                max(min(self.batcher.room(), reader.poll_records), 1),
                min(self.batcher.seconds_left(), WAIT_S),
            )
        if chunk is not None:
            self.batcher.add(chunk)
            self._note_ends(chunk)
        if self.batcher.has_content() and (self.batcher.is_full() or self._all_at_end(reader)):
            batch = self.batcher.close(self.generation)
            with self._lock:  # where reading began, for partitions without a stored position
                for pid, first in batch.first_positions.items():
                    self._next.setdefault(reader.registry.partition(pid), first)
            log.debug(
                "closed a batch of %d records (%d bytes, generation %d)", len(batch), batch.nbytes, batch.generation
            )
            with self._lock:
                self._in_flight[batch.generation] = self._in_flight.get(batch.generation, 0) + batch.nbytes
            faults.reached("batch_closed")
            self.offer(
                batch,
                stale=lambda: self._reseek.is_set() or batch.generation != self.generation,
                waiting=lambda: self._poll_while_waiting(reader),
            )

    def _note_ends(self, chunk: Chunk) -> None:
        """Track partitions that reached their end and received nothing since."""
        if self._at_end and chunk.values:
            self._at_end.difference_update(chunk.partition_ids() - chunk.ends.keys())
        self._at_end.update(chunk.ends)

    def _all_at_end(self, reader: SourceReader) -> bool:
        """Every assigned partition is at its end: close the batch now rather than wait.

        Closing on each partition's end instead would cut a batch per partition at the
        tail of an until-caught-up run, each a commit of its own."""
        if not self._at_end:
            return False
        return all(reader.registry.id_of(sp) in self._at_end for sp in reader.assignment())

    def _do_reseek(self, reader: SourceReader) -> None:
        self._reseek.clear()
        with self.commit_lock:
            self.generation += 1
            self._forget_older_generations()
        self.batcher.clear()
        self._at_end.clear()
        self.drain()
        assignment = reader.assignment()
        stored = self._stored(assignment)
        resume = (
            self.keeper.resume(assignment, stored, self.generation)
            if self.keeper is not None
            else {sp: position + 1 for sp, position in stored.items()}
        )
        with self._lock:
            for sp, position in resume.items():
                self._next[sp] = position
            # A partition never committed nor batched restarts from the start position.
            target = {sp: self._next.get(sp) for sp in assignment}
        log.info("re-seeking to stored positions %s", {str(k): v for k, v in target.items()})
        reader.seek(target)
