"""The sink interface: positions stored atomically with the data.

A sink writer keeps, for every source partition, the highest position whose
records it has committed, in the same atomic commit as the records themselves
(Delta: txn actions; a database: a positions table in the same transaction).
The run loop drives the protocol in :mod:`stream_etl.checkpoint`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

from stream_etl.context import RunContext
from stream_etl.records import SourcePartition
from stream_etl.state import StateStore


class Snapshot(Protocol):
    """The sink's state at one version: its stored positions, its schema."""

    def position(self, partition: SourcePartition) -> int | None:
        """Highest committed position for ``partition``, or None."""
        ...


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """What one commit wrote."""

    rows: int
    version: int | None = None


@dataclass(frozen=True, slots=True)
class Staged:
    """Rows a sink wrote ahead of their commit (see :meth:`SinkWriter.stager`): invisible to
    readers until :meth:`SinkWriter.commit_staged` commits them, garbage if it never does."""

    rows: int
    schema: pa.Schema
    #: What the sink needs to commit them (Delta: the files' add actions).
    handle: Any


class SinkWriter(ABC):
    """An open sink. ``snapshot``, ``conform`` and ``commit`` run on the run loop's thread.

    ``stores_cursors`` sinks also keep the opaque per-partition cursors some sources
    need to resume (see :class:`~stream_etl.records.Chunk`), in the same commit.
    """

    stores_cursors: bool = False

    @abstractmethod
    def read_positions(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, int]:
        """Freshly read stored positions (any thread); partitions without one are absent."""

    @abstractmethod
    def snapshot(self) -> Snapshot:
        """Refresh and return the current state; commit against it to fence other writers."""

    def conform(self, table: pa.Table, snapshot: Snapshot) -> pa.Table:
        """Shape ``table`` for this sink (cast to its schema). Errors here are per row."""
        return table

    def read_cursors(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, str]:
        """The cursors stored with the current positions of ``partitions`` (any thread)."""
        return {}

    @abstractmethod
    def commit(
        self,
        snapshot: Snapshot,
        table: pa.Table | None,
        positions: dict[SourcePartition, int],
        *,
        cursors: Mapping[SourcePartition, str] | None = None,
    ) -> CommitInfo:
        """Write ``table``, ``positions`` (and ``cursors``) in one atomic commit based on ``snapshot``.

        Raises :class:`~stream_etl.errors.PositionConflict` if another writer
        committed positions for one of these partitions since ``snapshot``.
        """

    def stager(self, snapshot: Snapshot, table: pa.Table) -> Callable[[], Staged] | None:
        """A function that writes ``table`` ahead of its commit, where no reader sees it (it
        may run on another thread and raise); None when this sink cannot stage (the default)
        or not this table, and the rows are committed as usual.

        The run loop stages batches it may not commit yet (read during a group join, see
        :attr:`~stream_etl.sources.SourceReader.awaiting_assignment`) and commits them all at
        once with :meth:`commit_staged` when they turn out to be its own.
        """
        return None

    def commit_staged(
        self, snapshot: Snapshot, staged: Sequence[Staged], positions: dict[SourcePartition, int]
    ) -> CommitInfo:
        """Commit rows written by a :meth:`stager` and ``positions`` in one atomic commit based on
        ``snapshot`` (fenced like :meth:`commit`)."""
        msg = f"{type(self).__name__} stages nothing"
        raise NotImplementedError(msg)

    def summary(self) -> dict[str, Any]:
        """Facts for the run summary (location, version)."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


class Sink(ABC):
    """Where rows go. Cheap to build; :meth:`open` connects."""

    #: True when :meth:`open` and the writer's ``snapshot``/``conform`` only read the
    #: destination, so ``stream-etl preview --check-sinks`` may use them.
    opens_read_only: bool = False

    @abstractmethod
    def open(self, ctx: RunContext) -> SinkWriter:
        """Connect and check the destination is reachable."""

    @abstractmethod
    def describe(self) -> str:
        """One line for logs, e.g. ``delta s3://lake/orders``."""

    def default_name(self) -> str:
        return "sink"

    def default_dead_letters(self) -> Sink | None:
        """A sink for this one's dead letters when the topology names none."""
        return None

    def default_state_store(self, ctx: RunContext) -> StateStore | None:
        """Where stateful steps keep snapshots when this is the primary sink (None: nowhere)."""
        return None
