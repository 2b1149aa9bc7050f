"""Batcher: a micro-batch closes on records, bytes or latency; it knows each partition's range."""

from __future__ import annotations

import time
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from stream_etl.batcher import Batcher, BatchLimits, positions_per_partition
from stream_etl.errors import ConfigurationError
from stream_etl.records import Chunk

LONG = timedelta(hours=1)


def _chunk(pid: int, positions: range, *, size: int = 10, ends: dict[int, int] | None = None) -> Chunk:
    values: list[bytes | None] = [b"x" * size for _ in positions]
    return Chunk(
        values=values,
        pids=[pid] * len(values),
        positions=list(positions),
        nbytes=size * len(values),
        metadata={"key": [f"k{p}" for p in positions]},
        ends=ends or {},
    )


def test_an_empty_batcher_is_not_full_and_has_no_content() -> None:
    batcher = Batcher(BatchLimits(max_batch_records=1, max_batch_latency=timedelta(microseconds=1)))

    assert not batcher.is_full()
    assert not batcher.has_content()
    assert batcher.records == 0
    assert batcher.room() == 1
    assert batcher.seconds_left() == pytest.approx(1e-6)


def test_closes_on_the_record_limit() -> None:
    batcher = Batcher(BatchLimits(max_batch_records=5, max_batch_latency=LONG))

    batcher.add(_chunk(0, range(3)))
    assert not batcher.is_full()
    assert batcher.room() == 2
    batcher.add(_chunk(0, range(3, 5)))

    assert batcher.is_full()
    assert batcher.room() == 0


def test_closes_on_the_byte_limit() -> None:
    batcher = Batcher(BatchLimits(max_batch_records=1000, max_batch_bytes=100, max_batch_latency=LONG))

    batcher.add(_chunk(0, range(9), size=10))
    assert not batcher.is_full()
    batcher.add(_chunk(0, range(9, 10), size=10))

    assert batcher.is_full()
    assert batcher.records == 10


def test_closes_on_the_latency_limit() -> None:
    batcher = Batcher(BatchLimits(max_batch_records=1000, max_batch_latency=timedelta(milliseconds=30)))

    batcher.add(_chunk(0, range(1)))
    assert not batcher.is_full()
    assert 0 < batcher.seconds_left() <= 0.03
    time.sleep(0.05)

    assert batcher.is_full()
    assert batcher.seconds_left() == 0.0


def test_latency_counts_from_the_first_record_not_from_creation() -> None:
    batcher = Batcher(BatchLimits(max_batch_latency=timedelta(milliseconds=30)))
    time.sleep(0.05)

    assert not batcher.is_full()
    batcher.add(_chunk(0, range(1)))
    assert not batcher.is_full()


def test_close_turns_the_lists_into_arrays_with_first_and_last_positions_per_partition() -> None:
    batcher = Batcher(BatchLimits(max_batch_latency=LONG))
    batcher.add(_chunk(0, range(10, 13)))
    batcher.add(_chunk(2, range(100, 102), ends={2: 102}))
    batcher.add(_chunk(0, range(13, 15)))

    batch = batcher.close(generation=4)

    assert len(batch) == 7
    assert batch.pids.type == pa.int32()
    assert batch.positions.type == pa.int64()
    assert batch.pids.to_pylist() == [0, 0, 0, 2, 2, 0, 0]
    assert batch.positions.to_pylist() == [10, 11, 12, 100, 101, 13, 14]
    assert batch.first_positions == {0: 10, 2: 100}
    assert batch.last_positions == {0: 14, 2: 101}
    assert batch.ends == {2: 102}
    assert batch.metadata == {"key": ["k10", "k11", "k12", "k100", "k101", "k13", "k14"]}
    assert batch.nbytes == 70
    assert batch.generation == 4
    assert batch.opened_at <= batch.closed_at


def test_close_starts_a_new_batch() -> None:
    batcher = Batcher(BatchLimits(max_batch_records=2, max_batch_latency=LONG))
    batcher.add(_chunk(0, range(2)))
    batcher.close(generation=0)

    assert batcher.records == 0
    assert not batcher.is_full()
    assert not batcher.has_content()
    batcher.add(_chunk(0, range(2, 3)))
    assert batcher.close(generation=0).positions.to_pylist() == [2]


def test_clear_forgets_everything() -> None:
    batcher = Batcher(BatchLimits(max_batch_records=3, max_batch_latency=LONG))
    batcher.add(_chunk(0, range(3), ends={0: 3}))
    assert batcher.is_full()

    batcher.clear()

    assert batcher.records == 0
    assert not batcher.has_content()
    assert not batcher.is_full()
    assert batcher.room() == 3
    batch = batcher.close(generation=1)
    assert len(batch) == 0
    assert batch.first_positions == {}
    assert batch.last_positions == {}
    assert batch.ends == {}
    assert batch.metadata == {}


def test_an_end_without_records_is_content() -> None:
    batcher = Batcher(BatchLimits(max_batch_latency=LONG))
    batcher.add(Chunk(values=[], pids=[], positions=[], nbytes=0, ends={1: 50}))

    assert batcher.has_content()
    batch = batcher.close(generation=0)
    assert len(batch) == 0
    assert batch.ends == {1: 50}
    assert batch.last_positions == {}


def test_positions_per_partition_of_no_rows() -> None:
    assert positions_per_partition(pa.array([], pa.int32()), pa.array([], pa.int64())) == ({}, {})


def test_positions_per_partition_finds_min_and_max_in_any_order() -> None:
    first, last = positions_per_partition(pa.array([1, 0, 1, 0, 1], pa.int32()), pa.array([7, 3, 5, 2, 9], pa.int64()))

    assert first == {0: 2, 1: 5}
    assert last == {0: 3, 1: 9}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"max_batch_records": 0}, "max_batch_records", id="zero-records"),
        pytest.param({"max_batch_bytes": 0}, "max_batch_bytes", id="zero-bytes"),
        pytest.param({"max_batch_latency": timedelta(0)}, "max_batch_latency", id="zero-latency"),
        pytest.param({"max_batch_latency": timedelta(seconds=-1)}, "max_batch_latency", id="negative-latency"),
        pytest.param({"prefetch_batches": 0}, "prefetch_batches", id="zero-prefetch"),
    ],
)
def test_limits_reject_values_that_cannot_work(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        BatchLimits(**kwargs)  # type: ignore[arg-type]


def test_positions_per_partition_agree_whether_masked_or_grouped() -> None:
    pids = pa.array([i % 40 for i in range(2000)], pa.int32())
    positions = pa.array([(i * 7919) % 5003 for i in range(2000)], pa.int64())
    pairs = list(zip(pids.to_pylist(), positions.to_pylist(), strict=True))
    expected_first = {p: min(o for q, o in pairs if q == p) for p in range(40)}
    expected_last = {p: max(o for q, o in pairs if q == p) for p in range(40)}

    assert positions_per_partition(pids, positions) == (expected_first, expected_last)  # 40 ids: grouped
    few = pc.less(pids, 3)
    first, last = positions_per_partition(pids.filter(few), positions.filter(few))  # 3 ids: masked
    assert first == {p: expected_first[p] for p in range(3)} and last == {p: expected_last[p] for p in range(3)}


def test_with_big_batches_the_first_closes_at_an_eighth() -> None:
    batcher = Batcher(BatchLimits(max_batch_records=80_000))
    assert batcher.room() == 10_000
    batcher.add(Chunk(values=[b"x"] * 10_000, pids=[0] * 10_000, positions=list(range(10_000)), nbytes=10_000))
    assert batcher.is_full()
    batcher.close(generation=0)
    assert batcher.room() == 80_000

    assert Batcher(BatchLimits(max_batch_records=80_000), small_first=False).room() == 80_000
    assert Batcher(BatchLimits(max_batch_records=10_000)).room() == 10_000  # small batches: no change
    skipped = Batcher(BatchLimits(max_batch_records=80_000))
    skipped.full_size()
    assert skipped.room() == 80_000
