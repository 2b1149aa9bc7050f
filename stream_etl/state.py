"""State of stateful steps (dedupe, windows): per source partition, snapshotted with positions.

Invariants (see docs/ARCHITECTURE.md):

1. State is kept per source partition, so it moves with the partition when a rebalance
   gives the partition to another worker (as Kafka Streams keeps state per task).
2. Before a batch is committed, each stateful step's state of each partition in the batch
   is written as a snapshot tagged with that partition's last position in the batch.
   So whenever the primary sink stores position S for a partition, a snapshot at S exists.
3. On assignment (and after a re-seek) the worker restores, per partition, the newest
   snapshot at or below the stored position S and reads from its position + 1. With a
   snapshot at S that is exactly where the sink stands; an older one means the records in
   between are read again: they rebuild the state, and the sinks drop their output as
   already committed. A snapshot above S (written, then the commit failed) is ignored.
4. Stateful steps decide from the sequence of records of a partition, never from batch
   boundaries (a window's result is attributed to the record that closed it), so a replay
   with other batch boundaries gives the same rows at the same positions.

The prepare thread owns the steps' state. Restores decided in the fetch thread are handed
over keyed by generation and applied before the first batch of that generation.
"""

from __future__ import annotations

import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.ipc as ipc

from stream_etl.errors import SinkUnavailable
from stream_etl.records import PartitionRegistry, SourcePartition
from stream_etl.settings import Settings
from stream_etl.storage import filesystem_for


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One step's state of one partition, after the record at ``position``."""

    step: str
    partition: SourcePartition
    position: int
    state: pa.Table


class StateStore(ABC):
    """Keeps state snapshots of one job."""

    @abstractmethod
    def save(self, snapshots: Iterable[Snapshot]) -> None:
        """Write snapshots (each durable before this returns)."""

    @abstractmethod
    def load(self, step: str, partition: SourcePartition, at_most: int) -> Snapshot | None:
        """The newest snapshot of ``step`` for ``partition`` at a position <= ``at_most``."""

    @abstractmethod
    def prune(self, step: str, partition: SourcePartition, below: int) -> None:
        """Delete snapshots at positions < ``below``."""


class MemoryStateStore(StateStore):
    """Snapshots in a dict (tests, the in-memory harness)."""

    def __init__(self) -> None:
        self.snapshots: dict[tuple[str, SourcePartition], dict[int, pa.Table]] = {}
        self._lock = threading.Lock()

    def save(self, snapshots: Iterable[Snapshot]) -> None:
        with self._lock:
            for s in snapshots:
                self.snapshots.setdefault((s.step, s.partition), {})[s.position] = s.state

    def load(self, step: str, partition: SourcePartition, at_most: int) -> Snapshot | None:
        with self._lock:
            found = [p for p in self.snapshots.get((step, partition), {}) if p <= at_most]
            if not found:
                return None
            position = max(found)
            return Snapshot(step, partition, position, self.snapshots[(step, partition)][position])

    def prune(self, step: str, partition: SourcePartition, below: int) -> None:
        with self._lock:
            kept = self.snapshots.get((step, partition), {})
            for position in [p for p in kept if p < below]:
                del kept[position]


class FileStateStore(StateStore):
    """Snapshots as Arrow IPC files under ``uri`` (local path or ``s3://``).

    Layout: ``<uri>/<app id>/<step>/<stream>/<partition>/<position, 20 digits>.arrow``;
    a file is written under a temporary name and renamed, so a reader never sees half of one.
    """

    def __init__(self, uri: str, app_id: str, settings: Settings) -> None:
        self.fs, root = filesystem_for(uri, settings)
        self.root = f"{root.rstrip('/')}/{app_id}"

    def _dir(self, step: str, partition: SourcePartition) -> str:
        return f"{self.root}/{step}/{partition.stream}/{partition.partition}"

    def save(self, snapshots: Iterable[Snapshot]) -> None:
        try:
            for s in snapshots:
                directory = self._dir(s.step, s.partition)
                final = f"{directory}/{s.position:020d}.arrow"
                partial = f"{directory}/.{s.position:020d}.{uuid.uuid4().hex}.tmp"
                self.fs.create_dir(directory, recursive=True)
                with self.fs.open_output_stream(partial) as out, ipc.new_file(out, s.state.schema) as writer:
                    writer.write_table(s.state)
                self.fs.move(partial, final)
        except OSError as exc:
            msg = f"writing state snapshots under {self.root} failed: {exc}"
            raise SinkUnavailable(msg, table_uri=self.root) from exc

    def _positions(self, step: str, partition: SourcePartition) -> list[int]:
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(self._dir(step, partition), allow_not_found=True)
        names = (info.base_name for info in self.fs.get_file_info(selector))
        return sorted(int(n[:-6]) for n in names if n.endswith(".arrow") and n[:-6].isdigit())

    def load(self, step: str, partition: SourcePartition, at_most: int) -> Snapshot | None:
        try:
            found = [p for p in self._positions(step, partition) if p <= at_most]
            if not found:
                return None
            position = found[-1]
            with self.fs.open_input_file(f"{self._dir(step, partition)}/{position:020d}.arrow") as source:
                state = ipc.open_file(source).read_all()
        except OSError as exc:
            msg = f"reading state snapshots under {self.root} failed: {exc}"
            raise SinkUnavailable(msg, table_uri=self.root) from exc
        return Snapshot(step, partition, position, state)

    def prune(self, step: str, partition: SourcePartition, below: int) -> None:
        try:
            for position in self._positions(step, partition):
                if position < below:
                    self.fs.delete_file(f"{self._dir(step, partition)}/{position:020d}.arrow")
        except OSError:
            pass  # an old snapshot left behind costs space, never correctness


@dataclass(frozen=True, slots=True)
class Restore:
    """State to install in the prepare thread before batches of ``generation``."""

    generation: int
    states: Mapping[tuple[str, int], pa.Table | None]  # (step, partition id) -> state (None: empty)
    dropped: frozenset[int]  # partition ids no longer assigned


class StateKeeper:
    """Loads snapshots on assignment and hands them to the prepare thread by generation."""

    def __init__(self, store: StateStore, steps: list[str]) -> None:
        self.store = store
        self.steps = steps
        self._pending: list[Restore] = []
        self._lock = threading.Lock()
        #: The source reader's registry, so partition ids match the batches' (set on open).
        self.registry = PartitionRegistry()

    def resume(
        self, partitions: Iterable[SourcePartition], stored: Mapping[SourcePartition, int], generation: int
    ) -> dict[SourcePartition, int]:
        """Restore state for ``partitions``; returns where to read from (next positions)."""
        resume: dict[SourcePartition, int] = {}
        states: dict[tuple[str, int], pa.Table | None] = {}
        for sp in partitions:
            pid = self.registry.id_of(sp)
            if sp not in stored:
                for step in self.steps:
                    states[(step, pid)] = None  # nothing committed: start empty, from the start
                continue
            positions = []
            for step in self.steps:
                snapshot = self.store.load(step, sp, stored[sp])
                states[(step, pid)] = snapshot.state if snapshot is not None else None
                positions.append(snapshot.position if snapshot is not None else stored[sp])
            resume[sp] = min(positions) + 1
        with self._lock:
            self._pending.append(Restore(generation, states, frozenset()))
        return resume

    def revoke(self, partitions: Iterable[SourcePartition], generation: int) -> None:
        dropped = frozenset(self.registry.id_of(sp) for sp in partitions)
        with self._lock:
            self._pending.append(Restore(generation, {}, dropped))

    def due(self, generation: int) -> list[Restore]:
        """Restores to apply before processing a batch of ``generation``, oldest first."""
        with self._lock:
            due = [r for r in self._pending if r.generation <= generation]
            self._pending = [r for r in self._pending if r.generation > generation]
        return due
