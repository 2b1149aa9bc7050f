"""plan_commit: what one sink gets for a batch, given the positions it already stores."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import pytest

from stream_etl.batcher import Batcher, BatchLimits
from stream_etl.checkpoint import plan_commit
from stream_etl.records import LINEAGE, Batch, Chunk, PartitionRegistry, SourcePartition
from stream_etl.testing import MemorySnapshot

P0 = SourcePartition("orders", 0)
P1 = SourcePartition("orders", 1)
P2 = SourcePartition("orders", 2)


def _registry() -> PartitionRegistry:
    registry = PartitionRegistry()
    registry.ids_of([P0, P1, P2])
    return registry


def _batch(rows: list[tuple[int, int]]) -> Batch:
    """A batch of ``(partition id, position)`` rows, in that order."""
    batcher = Batcher(BatchLimits(max_batch_latency=timedelta(hours=1)))
    batcher.add(
        Chunk(
            values=[b"{}" for _ in rows],
            pids=[pid for pid, _ in rows],
            positions=[position for _, position in rows],
            nbytes=2 * len(rows),
        )
    )
    return batcher.close(generation=0)


def _table(lineage: list[int]) -> pa.Table:
    """Decoded rows: ``value`` is the lineage index times ten, to tell rows apart."""
    return pa.table({"value": [i * 10 for i in lineage], LINEAGE: pa.array(lineage, pa.int32())})


def _snapshot(positions: dict[SourcePartition, int] | None = None) -> MemorySnapshot:
    return MemorySnapshot(version=0, positions=positions or {}, schema=None)


# Rows 0-3 in partition 0 (positions 10..13), rows 4-6 in partition 1 (positions 5..7).
ROWS = [(0, 10), (0, 11), (0, 12), (0, 13), (1, 5), (1, 6), (1, 7)]


def test_a_fresh_sink_gets_every_row_and_the_last_positions() -> None:
    plan = plan_commit(_snapshot(), _table(list(range(7))), _batch(ROWS), _registry(), required=True)

    assert plan is not None
    assert plan.table is not None
    assert plan.table.column_names == ["value"]
    assert plan.table["value"].to_pylist() == [0, 10, 20, 30, 40, 50, 60]
    assert plan.lineage is not None
    assert plan.lineage.to_pylist() == list(range(7))
    assert plan.positions == {P0: 13, P1: 7}
    assert plan.replayed is None


def test_rows_at_or_below_the_stored_position_are_dropped() -> None:
    snapshot = _snapshot({P0: 11, P1: 4})

    plan = plan_commit(snapshot, _table(list(range(7))), _batch(ROWS), _registry(), required=True)

    assert plan is not None
    assert plan.lineage is not None
    assert plan.lineage.to_pylist() == [2, 3, 4, 5, 6]
    assert plan.table is not None
    assert plan.table["value"].to_pylist() == [20, 30, 40, 50, 60]
    assert plan.replayed is not None
    assert plan.replayed.to_pylist() == [0, 1]
    assert plan.positions == {P0: 13, P1: 7}


def test_a_fully_committed_partition_is_left_out_of_the_positions() -> None:
    snapshot = _snapshot({P0: 13})

    plan = plan_commit(snapshot, _table(list(range(7))), _batch(ROWS), _registry(), required=True)

    assert plan is not None
    assert plan.positions == {P1: 7}
    assert plan.lineage is not None
    assert plan.lineage.to_pylist() == [4, 5, 6]
    assert plan.replayed is not None
    assert plan.replayed.to_pylist() == [0, 1, 2, 3]


def test_rows_reordered_and_filtered_by_steps_are_matched_by_lineage() -> None:
    snapshot = _snapshot({P0: 12, P1: 5})
    table = _table([6, 0, 3, 5])  # steps dropped some rows and reordered the rest

    plan = plan_commit(snapshot, table, _batch(ROWS), _registry(), required=True)

    assert plan is not None
    assert plan.lineage is not None
    assert plan.lineage.to_pylist() == [6, 3, 5]
    assert plan.table is not None
    assert plan.table["value"].to_pylist() == [60, 30, 50]
    assert plan.replayed is not None
    assert plan.replayed.to_pylist() == [0]


def test_interleaved_partitions_with_a_sparse_partition_id() -> None:
    rows = [(2, 100), (0, 1), (2, 101), (0, 2), (2, 102)]
    snapshot = _snapshot({P2: 100})

    plan = plan_commit(snapshot, _table(list(range(5))), _batch(rows), _registry(), required=True)

    assert plan is not None
    assert plan.lineage is not None
    assert plan.lineage.to_pylist() == [1, 2, 3, 4]
    assert plan.positions == {P0: 2, P2: 102}


@pytest.mark.parametrize("required", [pytest.param(True, id="required"), pytest.param(False, id="not-required")])
def test_nothing_to_do_when_the_whole_batch_is_committed(required: bool) -> None:
    snapshot = _snapshot({P0: 13, P1: 9})

    plan = plan_commit(snapshot, _table(list(range(7))), _batch(ROWS), _registry(), required=required)

    assert plan is None


def test_a_required_sink_commits_positions_without_rows() -> None:
    plan = plan_commit(_snapshot(), None, _batch(ROWS), _registry(), required=True)

    assert plan is not None
    assert plan.table is None
    assert plan.lineage is None
    assert plan.positions == {P0: 13, P1: 7}


def test_a_required_sink_commits_positions_when_every_row_was_filtered() -> None:
    empty = _table([]).slice(0, 0)

    plan = plan_commit(_snapshot({P0: 3}), empty, _batch(ROWS), _registry(), required=True)

    assert plan is not None
    assert plan.table is not None
    assert plan.table.num_rows == 0
    assert plan.positions == {P0: 13, P1: 7}


@pytest.mark.parametrize(
    "table",
    [pytest.param(None, id="no-table"), pytest.param(_table([]), id="empty-table")],
)
def test_a_sink_that_is_not_required_skips_a_batch_without_rows(table: pa.Table | None) -> None:
    assert plan_commit(_snapshot(), table, _batch(ROWS), _registry(), required=False) is None


def test_a_sink_that_is_not_required_skips_a_batch_whose_rows_are_all_replayed() -> None:
    snapshot = _snapshot({P0: 13, P1: 6})
    table = _table([0, 1, 2, 3, 4, 5])  # row 6 (the only new one) was filtered out

    assert plan_commit(snapshot, table, _batch(ROWS), _registry(), required=False) is None
    required = plan_commit(snapshot, table, _batch(ROWS), _registry(), required=True)
    assert required is not None
    assert required.positions == {P1: 7}
    assert required.table is not None
    assert required.table.num_rows == 0


def test_drop_is_vectorized_over_a_large_batch() -> None:
    rows = [(i % 3, i // 3) for i in range(300_000)]
    snapshot = _snapshot({P0: 49_999, P1: 99_999})

    plan = plan_commit(snapshot, _table(list(range(300_000))), _batch(rows), _registry(), required=True)

    assert plan is not None
    assert plan.lineage is not None
    assert plan.replayed is not None
    assert len(plan.lineage) == 50_000 + 0 + 100_000
    assert len(plan.replayed) == 150_000
    assert plan.positions == {P0: 99_999, P2: 99_999}
