"""The prepare thread: decode each batch and run the topology's steps on it.

It sits between the fetch thread and the run loop, so that batch N+1 is decoded
and transformed while batch N is being committed (Arrow's JSON reader, the steps'
compute kernels and delta-rs's writer all release the GIL). Its queue holds one
prepared batch. It never commits anything: staleness (a rebalance, a re-seek) is
decided by the run loop under the commit lock, as for fetched batches.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

import pyarrow as pa
import pyarrow.compute as pc

from stream_etl import faults
from stream_etl.dead_letters import Failure
from stream_etl.decode import Format
from stream_etl.fetcher import Fetcher
from stream_etl.records import LINEAGE, Batch, merge_batches
from stream_etl.sources import SourceReader
from stream_etl.stage import WAIT_S, Stage, name_os_thread
from stream_etl.state import Snapshot, StateKeeper
from stream_etl.topology import Topology
from stream_etl.transforms.stateful import BatchView

log = logging.getLogger(__name__)

#: Most fetched batches merged into one prepared batch, for one commit (see Preparer._hand_over).
COALESCE_BATCHES = 2


@dataclass(frozen=True, slots=True)
class Prepared:
    """A batch, its rows per sink after the steps, and the records that failed so far."""

    batch: Batch
    outputs: dict[str, pa.Table | None]
    failures: list[Failure]
    decode_s: float
    transform_s: float
    #: State of each stateful step for each partition of the batch, after the batch.
    snapshots: list[Snapshot] = field(default_factory=list)
    #: How many fetched batches this is (more than one after :func:`merge_prepared`).
    batches: int = 1


def merge_prepared(first: Prepared, second: Prepared) -> Prepared | None:
    """``first`` and the next prepared batch as one, for a single commit, or None when they
    cannot be: of different generations or metadata, with state snapshots (stateful steps), or
    with rows for a sink whose columns differ between the two. ``second``'s lineage ids and
    failures are shifted past ``first``'s records."""
    a, b = first.batch, second.batch
    if a.generation != b.generation or a.metadata.keys() != b.metadata.keys():
        return None
    if first.snapshots or second.snapshots or first.outputs.keys() != second.outputs.keys():
        return None
    shift = len(a)
    outputs: dict[str, pa.Table | None] = {}
    for name, head in first.outputs.items():
        tail = second.outputs[name]
        if tail is None:
            outputs[name] = head
        elif LINEAGE not in tail.schema.names or (head is not None and head.schema != tail.schema):
            return None
        else:
            tail = _shifted(tail, shift)
            outputs[name] = tail if head is None else pa.concat_tables([head, tail])
    return Prepared(
        merge_batches(a, b),
        outputs,
        [*first.failures, *(replace(f, row=f.row + shift) for f in second.failures)],
        first.decode_s + second.decode_s,
        first.transform_s + second.transform_s,
        batches=first.batches + second.batches,
    )


def _shifted(table: pa.Table, shift: int) -> pa.Table:
    index = table.schema.get_field_index(LINEAGE)
    lineage = pc.add(table.column(index), pa.scalar(shift, table.schema.field(index).type))
    return table.set_column(index, LINEAGE, lineage)


class Preparer(Stage[Prepared]):
    """Decodes and transforms batches from ``fetcher`` for the run loop."""

    def __init__(
        self,
        fetcher: Fetcher,
        topology: Topology,
        format: Format,  # noqa: A002
        reader: SourceReader,
        keeper: StateKeeper | None = None,
    ) -> None:
        super().__init__("stream-etl-prepare", capacity=1)
        self.fetcher, self.topology, self.format, self.reader = fetcher, topology, format, reader
        self.keeper = keeper
        self.stateful = {step.name: step for step in topology.stateful_steps()}
        #: Most records and raw bytes one merged batch holds (see _hand_over): never more bytes
        #: than one batch may hold, so big records (batches closed by bytes) are not merged.
        self.coalesce_records = COALESCE_BATCHES * topology.limits.max_batch_records
        self.coalesce_bytes = topology.limits.max_batch_bytes

    def prepare(self, batch: Batch) -> Prepared:
        if self.keeper is not None:
            self._restore(batch.generation)
        started = time.perf_counter()
        decoded = self.format.decode(batch.values)
        failures = list(decoded.failures)
        table = decoded.table
        decoded_at = time.perf_counter()
        faults.reached("decoded")
        if table is not None:
            for column, values in self.reader.metadata_columns(batch, table[LINEAGE].combine_chunks()).items():
                table = table.append_column(column, values)
        outputs = self.topology.execute(table, failures, BatchView(batch))
        faults.reached("transformed")
        snapshots = [
            Snapshot(name, self.reader.registry.partition(pid), last, step.state(pid))
            for name, step in self.stateful.items()
            for pid, last in batch.last_positions.items()
        ]
        return Prepared(batch, outputs, failures, decoded_at - started, time.perf_counter() - decoded_at, snapshots)

    def _restore(self, generation: int) -> None:
        """Install the state the fetch thread loaded for this generation (after a rebalance)."""
        assert self.keeper is not None  # noqa: S101 - checked by the caller
        for restore in self.keeper.due(generation):
            for pid in restore.dropped:
                for step in self.stateful.values():
                    step.forget(pid)
            for (name, pid), state in restore.states.items():
                self.stateful[name].restore(pid, state)

    def _hand_over(self, prepared: Prepared, stale: Callable[[], bool]) -> None:
        """Queue ``prepared``, merged into the batch still queued if there is one.

        A batch still queued when the next one is ready means the run loop's commits lag
        behind; each commit costs a round of storage requests whatever its size, so one
        commit of both shrinks the lag instead of letting it grow. Up to
        :data:`COALESCE_BATCHES` batches merge, within ``max_batch_bytes`` of raw records
        together; a batch that cannot merge (see :func:`merge_prepared`) is queued after the
        other as usual. Only this thread puts into the queue, so once the queued batch is
        taken out the queue has room for it again.
        """
        try:
            queued = self.queue.get_nowait()
        except queue.Empty:
            self.offer(prepared, stale=stale)
            return
        merged = None
        records = len(queued.batch) + len(prepared.batch)
        if records <= self.coalesce_records and queued.batch.nbytes + prepared.batch.nbytes <= self.coalesce_bytes:
            merged = merge_prepared(queued, prepared)
        if merged is not None:
            self.queue.put_nowait(merged)
            return
        self.queue.put_nowait(queued)
        self.offer(prepared, stale=stale)

    def _stale(self, generation: int) -> bool:
        return generation < self.fetcher.generation

    def run(self) -> None:
        name_os_thread("se-prepare")
        try:
            while not self.stopping.is_set():
                batch = self.fetcher.take(timeout=WAIT_S)
                if batch is None or batch.generation < self.fetcher.generation:
                    continue
                self._hand_over(self.prepare(batch), stale=partial(self._stale, batch.generation))
        except BaseException as exc:  # handed to the run loop, which re-raises it
            self.error = exc
