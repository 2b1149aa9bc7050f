"""Stateful steps: state per source partition, decided by the order of its records.

A stateful step sees, besides the table, where each row comes from (:class:`BatchView`):
its partition and position. It keeps one state per partition and must decide from the
sequence of that partition's records alone, never from where a batch starts or ends, so
that a replay after a crash produces the same rows at the same positions (see
:mod:`stream_etl.state`). It does not bisect failures: records it cannot use (a missing
event time) it reports itself, as failures.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from stream_etl.dead_letters import Failure
from stream_etl.records import LINEAGE, Batch
from stream_etl.transforms.base import Step


@dataclass(frozen=True, slots=True)
class BatchView:
    """Where the rows of a batch's tables come from."""

    batch: Batch

    def origins(self, table: pa.Table) -> tuple[pa.Array, pa.Array]:
        """Partition id and position of each row of ``table`` (from its lineage column)."""
        rows = table[LINEAGE].combine_chunks()
        return self.batch.pids.take(rows), self.batch.positions.take(rows)

    def last_position(self, pid: int) -> int:
        return self.batch.last_positions[pid]


def by_partition(table: pa.Table, view: BatchView) -> list[tuple[int, pa.Table]]:
    """Split ``table`` by source partition; each part sorted by position (record order)."""
    pids, positions = view.origins(table)
    ordered = table.append_column("__pid", pids).append_column("__position", positions)
    ordered = ordered.sort_by([("__pid", "ascending"), ("__position", "ascending")])
    parts = []
    for pid in pc.unique(pids).to_pylist():
        part = ordered.filter(pc.equal(ordered["__pid"], pid))
        parts.append((pid, part.drop_columns(["__pid"])))
    return parts


class StatefulStep(Step):
    """A step with state per partition. Subclasses implement :meth:`process` and the state I/O."""

    row_local = False

    def apply(self, table: pa.Table) -> pa.Table:
        msg = f"{type(self).__name__} is stateful: the run loop calls process()"
        raise NotImplementedError(msg)

    @abstractmethod
    def process(self, table: pa.Table, view: BatchView, failures: list[Failure]) -> pa.Table | None:
        """Rows out for the rows in; update each partition's state."""

    @abstractmethod
    def state(self, pid: int) -> pa.Table:
        """The state of partition ``pid`` now (an empty table when it has none)."""

    @abstractmethod
    def restore(self, pid: int, state: pa.Table | None) -> None:
        """Replace the state of partition ``pid`` (None: empty)."""

    @abstractmethod
    def forget(self, pid: int) -> None:
        """Drop the state of a partition this worker no longer owns."""
