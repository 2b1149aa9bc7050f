"""Prepared batches merged for one commit, and the prepare stage merging while the run loop lags."""

from __future__ import annotations

import pyarrow as pa

from stream_etl.dead_letters import Failure
from stream_etl.prepare import Prepared, merge_prepared
from stream_etl.records import LINEAGE, Batch, SourcePartition
from stream_etl.state import Snapshot


def _batch(n: int, start: int, *, generation: int = 0) -> Batch:
    positions = list(range(start, start + n))
    return Batch(
        values=[b"{}"] * n,
        pids=pa.array([0] * n, pa.int32()),
        positions=pa.array(positions, pa.int64()),
        metadata={},
        first_positions={0: start},
        last_positions={0: start + n - 1},
        ends={},
        cursors={},
        nbytes=2 * n,
        generation=generation,
        opened_at=0.0,
        closed_at=0.0,
    )


def _prepared(n: int, start: int, rows: list[int] | None = None, *, generation: int = 0) -> Prepared:
    rows = list(range(n)) if rows is None else rows
    table = pa.table({"id": [start + r for r in rows], LINEAGE: pa.array(rows, pa.int32())})
    return Prepared(_batch(n, start, generation=generation), {"out": table}, [], 0.5, 0.25)


def test_the_second_batchs_lineage_and_failures_move_past_the_first() -> None:
    first = _prepared(3, 0, rows=[0, 2])
    second = Prepared(
        _batch(4, 3),
        {"out": pa.table({"id": [4, 6], LINEAGE: pa.array([1, 3], pa.int32())})},
        [Failure(0, "decode", "DecodeError", "bad")],
        0.5,
        0.25,
    )

    merged = merge_prepared(first, second)

    assert merged is not None
    out = merged.outputs["out"]
    assert out is not None
    assert out["id"].to_pylist() == [0, 2, 4, 6]
    assert out[LINEAGE].to_pylist() == [0, 2, 4, 6]
    assert out.schema.field(LINEAGE).type == pa.int32()
    # each row's lineage still points at its record
    assert merged.batch.positions.take(out[LINEAGE].combine_chunks()).to_pylist() == [0, 2, 4, 6]
    assert merged.failures == [Failure(3, "decode", "DecodeError", "bad")]
    assert (merged.decode_s, merged.transform_s, merged.batches) == (1.0, 0.5, 2)


def test_a_sink_without_rows_in_one_part_takes_the_other_parts_rows() -> None:
    first = Prepared(_batch(2, 0), {"out": None}, [], 0, 0)
    merged = merge_prepared(first, _prepared(2, 2))
    assert merged is not None
    out = merged.outputs["out"]
    assert out is not None and out[LINEAGE].to_pylist() == [2, 3]
    both_empty = merge_prepared(first, Prepared(_batch(2, 2), {"out": None}, [], 0, 0))
    assert both_empty is not None and both_empty.outputs["out"] is None


def test_what_cannot_be_merged() -> None:
    base = _prepared(2, 0)
    assert merge_prepared(base, _prepared(2, 2, generation=1)) is None
    other_columns = Prepared(
        _batch(2, 2), {"out": pa.table({"x": ["a"], LINEAGE: pa.array([0], pa.int32())})}, [], 0, 0
    )
    assert merge_prepared(base, other_columns) is None
    snapshot = Snapshot("dedupe", SourcePartition("t", 0), 3, pa.table({"key": ["a"]}))
    stateful = Prepared(_batch(2, 2), base.outputs, [], 0, 0, [snapshot])
    assert merge_prepared(base, stateful) is None
