"""The commit protocol: how a batch reaches a sink exactly once.

Invariants (see docs/ARCHITECTURE.md):

1. A sink stores, per source partition, the highest position it has committed,
   in the same atomic commit as the rows (Delta: one txn action per partition,
   app id ``<job app id>-<stream>-<partition>``, version = position).
2. A row whose source position is at or below the stored position of its
   partition is never written again: :func:`plan_commit` drops it, using the
   snapshot that the commit is then based on.
3. A commit based on a snapshot fails if another writer committed positions for
   the same partitions after it (``PositionConflict``); the run loop then drops
   the batch, re-reads the stored positions and seeks the source to them.
4. Reading resumes at stored position + 1 of the primary (first) sink. Other
   sinks are committed before the primary one, so they are never behind it,
   and invariant 2 removes what they would otherwise get twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from stream_etl.records import LINEAGE, Batch, PartitionRegistry, SourcePartition
from stream_etl.sinks import Snapshot


@dataclass(frozen=True, slots=True)
class CommitPlan:
    """Rows to write (lineage column dropped), positions (and cursors) to store, rows skipped."""

    table: pa.Table | None
    lineage: pa.Array | None
    positions: dict[SourcePartition, int]
    replayed: pa.Array | None
    cursors: dict[SourcePartition, str]


def plan_commit(
    snapshot: Snapshot,
    table: pa.Table | None,
    batch: Batch,
    registry: PartitionRegistry,
    *,
    required: bool,
) -> CommitPlan | None:
    """What to commit to one sink for ``batch``, or None if there is nothing to do.

    ``required`` sinks (the primary) commit positions even with no rows, so that
    a batch whose records were all filtered out still moves the job forward.
    """
    stored: dict[int, int | None] = {pid: snapshot.position(registry.partition(pid)) for pid in batch.last_positions}
    positions = {
        registry.partition(pid): last
        for pid, last in batch.last_positions.items()
        if (before := stored[pid]) is None or last > before
    }
    if not positions:
        return None  # the whole batch is already committed
    replayed = None
    if table is not None and table.num_rows and _overlaps(batch, stored):
        table, replayed = _drop_committed(table, batch, stored)
    if not required and (table is None or table.num_rows == 0):
        return None
    lineage = table[LINEAGE].combine_chunks() if table is not None else None
    if table is not None:
        table = table.drop_columns([LINEAGE])
    cursors = {sp: cursor for pid, cursor in batch.cursors.items() if (sp := registry.partition(pid)) in positions}
    return CommitPlan(table, lineage, positions, replayed, cursors)


def _overlaps(batch: Batch, stored: dict[int, int | None]) -> bool:
    """Whether any record of the batch is at or below its partition's stored position."""
    return any(position is not None and batch.first_positions[pid] <= position for pid, position in stored.items())


def _drop_committed(table: pa.Table, batch: Batch, stored: dict[int, int | None]) -> tuple[pa.Table, pa.Array]:
    """Remove rows at or below their partition's stored position (vectorized)."""
    size = max(stored) + 1
    floor = [-1] * size
    for pid, position in stored.items():
        if position is not None:
            floor[pid] = position
    rows = table[LINEAGE]
    row_pids = pc.take(batch.pids, rows)
    row_positions = pc.take(batch.positions, rows)
    keep = pc.greater(row_positions, pc.take(pa.array(floor, pa.int64()), row_pids))
    return table.filter(keep), table.filter(pc.invert(keep))[LINEAGE].combine_chunks()
