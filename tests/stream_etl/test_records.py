"""Batches merged for one commit: values, partition ids, positions and bounds line up."""

from __future__ import annotations

import pyarrow as pa
import pytest

from stream_etl.rawvalues import RawValues
from stream_etl.records import Batch, ChainedValues, merge_batches


def _batch(values: list[bytes | None], pids: list[int], positions: list[int], *, generation: int = 0) -> Batch:
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for pid, position in zip(pids, positions, strict=True):
        first.setdefault(pid, position)
        last[pid] = position
    return Batch(
        values=values,
        pids=pa.array(pids, pa.int32()),
        positions=pa.array(positions, pa.int64()),
        metadata={"offset": pa.array(positions, pa.int64())},
        first_positions=first,
        last_positions=last,
        ends={pid: last[pid] + 1 for pid in last},
        cursors={pid: f"c{position}" for pid, position in last.items()},
        nbytes=sum(len(v or b"") for v in values),
        generation=generation,
        opened_at=1.0 + positions[0],
        closed_at=2.0 + positions[-1],
    )


def test_chained_values_index_across_their_parts() -> None:
    raw = RawValues.from_buffers(2, b"c\nd", pa.array([0, 2, 4], pa.int64()).buffers()[1], (), max_len=1, nbytes=2)
    values = ChainedValues([[b"a", None], raw, []])
    assert len(values) == 4
    assert list(values) == [b"a", None, b"c", b"d"]
    assert [values[i] for i in range(4)] == [b"a", None, b"c", b"d"]
    assert values[-1] == b"d"
    assert values[1:3] == [None, b"c"]
    with pytest.raises(IndexError):
        values[4]


def test_a_merged_batch_is_the_first_then_the_second() -> None:
    first = _batch([b"a", b"b", b"c"], [0, 1, 0], [10, 20, 11])
    second = _batch([b"d", b"e"], [1, 2], [21, 30])

    merged = merge_batches(first, second)

    assert len(merged) == 5
    assert list(merged.values) == [b"a", b"b", b"c", b"d", b"e"]
    assert merged.pids.to_pylist() == [0, 1, 0, 1, 2]
    assert merged.positions.to_pylist() == [10, 20, 11, 21, 30]
    assert merged.metadata["offset"].to_pylist() == [10, 20, 11, 21, 30]
    assert merged.first_positions == {0: 10, 1: 20, 2: 30}
    assert merged.last_positions == {0: 11, 1: 21, 2: 30}
    assert merged.ends == {0: 12, 1: 22, 2: 31}
    assert merged.cursors == {0: "c11", 1: "c21", 2: "c30"}
    assert merged.nbytes == 5
    assert (merged.opened_at, merged.closed_at) == (first.opened_at, second.closed_at)


def test_batches_of_different_generations_are_not_merged() -> None:
    with pytest.raises(ValueError, match="one generation"):
        merge_batches(_batch([b"a"], [0], [1]), _batch([b"b"], [0], [2], generation=1))
