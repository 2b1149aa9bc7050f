"""The source interface: connect, get partitions assigned, poll chunks, seek.

A source never decides where to start reading on its own: when partitions are
assigned it asks the :class:`AssignmentListener` (the run loop), which answers
with the positions stored in the primary sink. The source only falls back to its
configured start position (earliest, latest, a timestamp) for partitions that
have none.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Protocol

import pyarrow as pa

from stream_etl.context import RunContext
from stream_etl.records import Batch, Chunk, PartitionRegistry, SourcePartition


class AssignmentListener(Protocol):
    """Told about partitions gained and lost; called from the thread that polls."""

    def on_assigned(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, int]:
        """Return the next position to read for partitions that have a stored one."""
        ...

    def on_revoked(self, partitions: Sequence[SourcePartition]) -> None:
        """Partitions are going away: stop committing batches that hold them."""
        ...

    def resume_cursors(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, str]:
        """Cursors stored with the positions of ``partitions`` (sources that emit cursors)."""
        ...


class SourceReader(ABC):
    """An open connection to a source. Used from one thread at a time."""

    registry: PartitionRegistry

    #: False for sources whose ends are only found while reading (Kinesis: a shard's end is
    #: where a read comes back empty at the tip). Until-caught-up runs of such sources do not
    #: ask :meth:`end_positions` up front; they stop once :meth:`found_ends` are reached.
    ends_known_up_front: bool = True
    #: True when :meth:`end_positions` may be called from another thread while the fetch
    #: thread polls (the run loop then reads records while it finds the exact ends).
    ends_while_polling: bool = False

    def start(self) -> None:  # noqa: B027 - optional hook
        """Start getting partitions assigned (join the group). Called once, before polling."""

    @abstractmethod
    def poll(self, max_records: int, timeout: float) -> Chunk | None:
        """Up to ``max_records`` records, waiting at most ``timeout`` seconds."""

    @abstractmethod
    def seek(self, positions: dict[SourcePartition, int | None]) -> None:
        """Read each partition from the given next position; None means the start position.

        Partitions that are no longer assigned are ignored.
        """

    @abstractmethod
    def assignment(self) -> list[SourcePartition]:
        """Partitions currently assigned to this reader."""

    @abstractmethod
    def end_positions(self) -> dict[SourcePartition, int]:
        """For every partition that holds records now: the position just past its last one."""

    def rough_end_positions(self) -> dict[SourcePartition, int]:
        """A quick estimate of :meth:`end_positions` that may understate, never overstate."""
        return self.end_positions()

    def found_ends(self) -> dict[SourcePartition, int] | None:
        """Sources with ends found while reading: the end position of every partition left to
        read, once each was seen at its end; None while some are not (any thread)."""
        return None

    #: True when :meth:`pause` really stops the flow, so the fetch thread may keep
    #: polling while the next stage is behind.
    pausable: bool = False

    def pause(self) -> None:  # noqa: B027 - optional hook
        """Stop fetching from the assigned partitions (backpressure); ``poll`` keeps serving
        callbacks and returns nothing new. Sources without the notion do nothing."""

    def resume(self) -> None:  # noqa: B027 - optional hook
        """Fetch again after :meth:`pause`, from the position after the last record returned."""

    #: True while the records a reader returns are not yet known to be this worker's (a
    #: Kafka reader reading during its group join): the run loop commits nothing meanwhile.
    awaiting_assignment: bool = False

    #: Most records the fetch thread asks of one :meth:`poll` (a reader whose poll costs
    #: little per call but copies each chunk once more when a batch is closed asks more).
    poll_records: int = 20_000

    #: True when :meth:`serve` keeps the reader alive (callbacks, group membership) without
    #: taking records, and the client's own bounded buffer then holds what it fetched: the
    #: fetch thread applies backpressure by serving instead of pausing. (A Kafka pause drops
    #: what librdkafka prefetched, and the fetch after the resume starts up to ~0.5 s later.)
    can_hold_back: bool = False

    def serve(self, timeout: float) -> Chunk | None:
        """Serve the client's events for up to ``timeout`` seconds without taking records (see
        :attr:`can_hold_back`). Returns records only if some reached the client's event queue."""
        time.sleep(timeout)
        return None

    def commit(self, positions: dict[SourcePartition, int]) -> None:  # noqa: B027 - optional hook
        """Record progress in the source itself (Kafka group offsets), for lag tooling only."""

    def metadata_columns(self, batch: Batch, rows: pa.Int32Array) -> dict[str, pa.Array]:
        """Metadata columns (topic, offset, timestamp...) for ``rows`` of ``batch``."""
        return {}

    @abstractmethod
    def close(self) -> None:
        """Leave the group and release the connection."""


class Source(ABC):
    """Where records come from. Cheap to build; :meth:`open` connects."""

    @abstractmethod
    def open(self, ctx: RunContext, listener: AssignmentListener) -> SourceReader:
        """Connect and check the streams exist; partitions come after ``start()``."""

    @abstractmethod
    def describe(self) -> str:
        """One line for logs, e.g. ``kafka topic orders``."""

    def for_preview(self) -> Source:
        """A source for ``stream-etl preview``: reads without changing anything at the source
        (no group membership, no committed offsets). Sources that keep no such state return self."""
        return self
