"""The prepare thread: decode each batch and run the topology's steps on it.

It sits between the fetch thread and the run loop, so that batch N+1 is decoded
and transformed while batch N is being committed (Arrow's JSON reader, the steps'
compute kernels and delta-rs's writer all release the GIL). Its queue holds one
prepared batch. It never commits anything: staleness (a rebalance, a re-seek) is
decided by the run loop under the commit lock, as for fetched batches.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import partial

import pyarrow as pa

from stream_etl import faults
from stream_etl.dead_letters import Failure
from stream_etl.decode import Format
from stream_etl.fetcher import Fetcher
from stream_etl.records import LINEAGE, Batch
from stream_etl.sources import SourceReader
from stream_etl.stage import WAIT_S, Stage, name_os_thread
from stream_etl.state import Snapshot, StateKeeper
from stream_etl.topology import Topology
from stream_etl.transforms.stateful import BatchView

log = logging.getLogger(__name__)


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

    def _stale(self, generation: int) -> bool:
        return generation < self.fetcher.generation

    def run(self) -> None:
        name_os_thread("se-prepare")
        try:
            while not self.stopping.is_set():
                batch = self.fetcher.take(timeout=WAIT_S)
                if batch is None or batch.generation < self.fetcher.generation:
                    continue
                self.offer(self.prepare(batch), stale=partial(self._stale, batch.generation))
        except BaseException as exc:  # handed to the run loop, which re-raises it
            self.error = exc
