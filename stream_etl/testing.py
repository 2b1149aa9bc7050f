"""Test a topology without a broker or an object store.

::

    from stream_etl.testing import run_topology

    result = run_topology(topology, [{"id": 1, "amount": 5.0}, b"not json"])
    assert result.output().num_rows == 1
    assert result.dead_letters.num_rows == 1

:class:`ListSource` and :class:`MemorySink` are real implementations of the
source and sink interfaces (positions, seeks, conflicts), so the run loop that
drives them is the one that drives Kafka and Delta.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa

from stream_etl.context import RunContext
from stream_etl.errors import PositionConflict
from stream_etl.records import Batch, Chunk, PartitionRegistry, SourcePartition
from stream_etl.runloop import RunLoop, RunSummary
from stream_etl.sinks import CommitInfo, Sink, SinkWriter, Snapshot
from stream_etl.sources import AssignmentListener, Source, SourceReader
from stream_etl.state import MemoryStateStore, StateStore
from stream_etl.topology import Topology

Record = bytes | str | dict[str, Any] | None


def _raw(record: Record) -> bytes | None:
    if record is None or isinstance(record, bytes):
        return record
    if isinstance(record, str):
        return record.encode()
    return orjson.dumps(record)


class ListSource(Source):
    """Records from a list, spread round-robin over ``partitions``; position = index in its partition."""

    def __init__(
        self,
        records: Sequence[Record],
        *,
        partitions: int = 1,
        stream: str = "memory",
        metadata: Sequence[str] = (),
        cursors: bool = False,
    ) -> None:
        """``metadata`` may name ``partition`` and ``offset`` to add ``_partition``/``_offset`` columns;
        ``cursors`` makes it emit a cursor ``"cursor-<position>"`` per partition, like a Kinesis source."""
        self.stream = stream
        self.metadata = tuple(metadata)
        self.cursors = cursors
        self.partitions: list[list[bytes | None]] = [[] for _ in range(partitions)]
        for i, record in enumerate(records):
            self.partitions[i % partitions].append(_raw(record))

    def describe(self) -> str:
        return f"list of {sum(map(len, self.partitions))} records in {len(self.partitions)} partition(s)"

    def open(self, ctx: RunContext, listener: AssignmentListener) -> ListReader:
        return ListReader(self, listener)


class ListReader(SourceReader):
    def __init__(self, source: ListSource, listener: AssignmentListener) -> None:
        self.source = source
        self.registry = PartitionRegistry()
        self._partitions = [SourcePartition(source.stream, i) for i in range(len(source.partitions))]
        self.registry.ids_of(self._partitions)
        self.listener = listener
        self._cursor = [0] * len(self._partitions)
        self._turn = 0
        self._ended: set[int] = set()

    def start(self) -> None:
        resume = self.listener.on_assigned(self._partitions)
        self._cursor = [resume.get(sp, 0) for sp in self._partitions]
        if self.source.cursors:
            #: What the sink gave back at start, for tests of the cursor round trip.
            self.resumed_cursors = self.listener.resume_cursors(self._partitions)

    def poll(self, max_records: int, timeout: float) -> Chunk | None:
        for _ in range(len(self._partitions)):
            pid = self._turn
            self._turn = (self._turn + 1) % len(self._partitions)
            values = self.source.partitions[pid]
            start = self._cursor[pid]
            if start < len(values):
                taken = values[start : start + max_records]
                self._cursor[pid] = start + len(taken)
                end = self._cursor[pid] == len(values)
                if end:
                    self._ended.add(pid)
                return Chunk(
                    values=taken,
                    pids=[pid] * len(taken),
                    positions=list(range(start, start + len(taken))),
                    nbytes=sum(len(v) for v in taken if v),
                    ends={pid: len(values)} if end else {},
                    cursors={pid: f"cursor-{start + len(taken) - 1}"} if self.source.cursors else {},
                )
        unreported = {pid: len(v) for pid, v in enumerate(self.source.partitions) if pid not in self._ended}
        self._ended.update(unreported)
        if unreported:  # partitions that were empty from the start
            return Chunk(values=[], pids=[], positions=[], nbytes=0, ends=unreported)
        time.sleep(min(timeout, 0.01))
        return None

    def seek(self, positions: dict[SourcePartition, int | None]) -> None:
        for sp, position in positions.items():
            pid = self.registry.id_of(sp)
            self._cursor[pid] = position or 0
            self._ended.discard(pid)

    def assignment(self) -> list[SourcePartition]:
        return list(self._partitions)

    def end_positions(self) -> dict[SourcePartition, int]:
        return {sp: len(v) for sp, v in zip(self._partitions, self.source.partitions, strict=True) if v}

    def metadata_columns(self, batch: Batch, rows: pa.Int32Array) -> dict[str, pa.Array]:
        columns = {}
        if "partition" in self.source.metadata:
            columns["_partition"] = batch.pids.take(rows)
        if "offset" in self.source.metadata:
            columns["_offset"] = batch.positions.take(rows)
        return columns

    def close(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class MemorySnapshot:
    version: int
    positions: dict[SourcePartition, int]
    schema: pa.Schema | None

    def position(self, partition: SourcePartition) -> int | None:
        return self.positions.get(partition)


class MemorySink(Sink):
    """Keeps committed tables and positions in memory, with the same conflict rules as Delta."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.tables: list[pa.Table] = []
        self.positions: dict[SourcePartition, int] = {}
        self.cursors: dict[SourcePartition, str] = {}
        self.version = -1
        self.lock = threading.Lock()
        self.state_store = MemoryStateStore()
        self._changed_at: dict[SourcePartition, int] = {}

    def describe(self) -> str:
        return f"memory sink {self.name}"

    def default_name(self) -> str:
        return self.name

    def default_dead_letters(self) -> Sink:
        return MemorySink(f"{self.name}_dead_letters")

    def default_state_store(self, ctx: RunContext) -> StateStore:
        return self.state_store

    def open(self, ctx: RunContext) -> MemoryWriter:
        return MemoryWriter(self)

    def table(self) -> pa.Table:
        """Everything committed so far."""
        with self.lock:
            tables = [t for t in self.tables if t.num_rows]
            if not tables:
                return self.tables[0] if self.tables else pa.table({})
            return pa.concat_tables(tables, promote_options="permissive")


class MemoryWriter(SinkWriter):
    stores_cursors = True

    def __init__(self, sink: MemorySink) -> None:
        self.sink = sink

    def read_cursors(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, str]:
        with self.sink.lock:
            return {sp: self.sink.cursors[sp] for sp in partitions if sp in self.sink.cursors}

    def read_positions(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, int]:
        with self.sink.lock:
            return {sp: self.sink.positions[sp] for sp in partitions if sp in self.sink.positions}

    def snapshot(self) -> Snapshot:
        with self.sink.lock:
            schema = self.sink.tables[0].schema if self.sink.tables else None
            return MemorySnapshot(self.sink.version, dict(self.sink.positions), schema)

    def commit(
        self,
        snapshot: Snapshot,
        table: pa.Table | None,
        positions: dict[SourcePartition, int],
        *,
        cursors: Mapping[SourcePartition, str] | None = None,
    ) -> CommitInfo:
        if not isinstance(snapshot, MemorySnapshot):
            msg = f"expected a MemorySnapshot, got {type(snapshot).__name__}"
            raise TypeError(msg)
        sink = self.sink
        with sink.lock:
            moved = [sp for sp in positions if sink._changed_at.get(sp, -1) > snapshot.version]
            if moved:
                msg = f"positions of {[str(p) for p in moved]} moved since version {snapshot.version}"
                raise PositionConflict(msg, table_uri=f"memory://{sink.name}", table_version=sink.version)
            sink.version += 1
            if table is not None:
                sink.tables.append(table)
            for sp, position in positions.items():
                sink.positions[sp] = position
                sink._changed_at[sp] = sink.version
            sink.cursors.update(cursors or {})
            return CommitInfo(rows=table.num_rows if table is not None else 0, version=sink.version)

    def summary(self) -> dict[str, Any]:
        return {"location": f"memory://{self.sink.name}", "version": self.sink.version}


@dataclass(frozen=True, slots=True)
class TestRun:
    """Outputs of :func:`run_topology`, by sink name."""

    __test__ = False  # not a pytest test class

    sinks: dict[str, MemorySink]
    dead_letter_sink: MemorySink
    summary: RunSummary

    def output(self, name: str | None = None) -> pa.Table:
        """Rows committed to sink ``name`` (the primary sink by default)."""
        sink = self.sinks[name] if name is not None else next(iter(self.sinks.values()))
        return sink.table()

    @property
    def dead_letters(self) -> pa.Table:
        return self.dead_letter_sink.table()


def run_topology(
    topology: Topology,
    records: Sequence[Record],
    *,
    partitions: int = 1,
    app_id: str = "test",
    args: dict[str, str] | None = None,
) -> TestRun:
    """Run ``topology`` over ``records`` with in-memory source and sinks, until caught up."""
    sinks = {node.name: MemorySink(node.name) for node in topology.sink_nodes}
    dead = MemorySink("dead_letters")
    local = topology.with_connectors(source=ListSource(records, partitions=partitions), sinks=sinks, dead_letters=dead)
    ctx = RunContext(app_id=app_id, mode="until_caught_up", args=args or {})
    summary = RunLoop(local, ctx).run()
    return TestRun(sinks, dead, summary)
