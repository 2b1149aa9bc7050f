"""What sources hand to the engine: partitions, chunks of raw records, batches.

A *position* is an integer that grows along a partition (a Kafka offset; a
per-shard counter for Kinesis). Positions are what sinks store atomically with
the data they write, so every type here keeps them as plain ``int``.

Records travel column-wise: a :class:`Chunk` holds parallel lists exactly as a
client library produced them, and a :class:`Batch` holds the same data as Arrow
arrays, so no stage after the source touches records one at a time.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, overload

import pyarrow as pa
import pyarrow.compute as pc

from stream_etl.rawvalues import RawValues, checked_index

#: Name of the column that carries each row's index into its batch through every
#: step, so a row can be traced back to its record (position, raw bytes) for
#: dead-lettering and for the at-most-once-per-position guard in the sinks.
LINEAGE = "__stream_etl_row"


@dataclass(frozen=True, slots=True, order=True)
class SourcePartition:
    """One ordered partition of a source: a Kafka topic partition, a Kinesis shard."""

    stream: str
    partition: int | str

    def __str__(self) -> str:
        return f"{self.stream}-{self.partition}"


class PartitionRegistry:
    """Stable small integer ids for partitions, so batches carry ids, not objects.

    Ids are never reused during a run; the registry only grows.
    """

    def __init__(self) -> None:
        self._ids: dict[SourcePartition, int] = {}
        self._partitions: list[SourcePartition] = []
        self._lock = threading.Lock()

    def id_of(self, partition: SourcePartition) -> int:
        found = self._ids.get(partition)
        if found is not None:
            return found
        with self._lock:
            found = self._ids.get(partition)
            if found is None:
                found = len(self._partitions)
                self._partitions.append(partition)
                self._ids[partition] = found
            return found

    def ids_of(self, partitions: Iterable[SourcePartition]) -> list[int]:
        return [self.id_of(p) for p in partitions]

    def partition(self, pid: int) -> SourcePartition:
        return self._partitions[pid]

    def __len__(self) -> int:
        return len(self._partitions)


@dataclass(frozen=True, slots=True)
class Chunk:
    """Records from one poll of a source, as parallel lists.

    ``pids`` are :class:`PartitionRegistry` ids. ``metadata`` holds optional
    per-record lists (timestamps, keys, headers) named by the source.
    A native reader hands over a :class:`~stream_etl.rawvalues.RawValues` and Arrow arrays
    (``pids`` int32, ``positions`` int64, metadata arrays) instead of lists: no Python
    object per record.
    ``ends`` maps a partition id to the position just past the last record the
    source has (its end was reached), for run-until-caught-up. ``cursors`` maps a
    partition id to an opaque resume token for its last record in the chunk, for
    sources whose native positions do not fit an integer (a Kinesis sequence number);
    sinks store it beside the position.
    """

    values: list[bytes | None] | RawValues
    pids: list[int] | pa.Int32Array
    positions: list[int] | pa.Int64Array
    nbytes: int
    metadata: dict[str, list[Any] | pa.Array] = field(default_factory=dict)
    ends: dict[int, int] = field(default_factory=dict)
    cursors: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def native(self) -> bool:
        """Column-wise (a native reader's buffers) rather than lists."""
        return isinstance(self.values, RawValues)

    def partition_ids(self) -> set[int]:
        """The partition ids of the chunk's records."""
        if isinstance(self.pids, pa.Array):
            return set(pc.unique(self.pids).to_pylist())
        return set(self.pids)


@dataclass(frozen=True, slots=True)
class Batch:
    """A micro-batch: the unit that is decoded, transformed and committed at once.

    ``last_positions`` maps each partition id in the batch to the highest position
    it holds; it is what a sink commits. ``generation`` lets the run loop drop
    batches read before a rebalance or a re-seek.
    """

    values: Sequence[bytes | None]
    pids: pa.Int32Array
    positions: pa.Int64Array
    metadata: dict[str, list[Any] | pa.Array]
    first_positions: dict[int, int]
    last_positions: dict[int, int]
    ends: dict[int, int]
    cursors: dict[int, str]
    nbytes: int
    generation: int
    opened_at: float
    closed_at: float

    def __len__(self) -> int:
        return len(self.values)


class ChainedValues(Sequence[bytes | None]):
    """The values of several batches as one sequence, without copying them (a merged batch's)."""

    __slots__ = ("_parts", "_starts")

    def __init__(self, parts: Sequence[Sequence[bytes | None]]) -> None:
        self._parts = list(parts)
        self._starts = [0]
        for part in self._parts:
            self._starts.append(self._starts[-1] + len(part))

    def __len__(self) -> int:
        return self._starts[-1]

    @overload
    def __getitem__(self, index: int) -> bytes | None: ...

    @overload
    def __getitem__(self, index: slice) -> list[bytes | None]: ...

    def __getitem__(self, index: int | slice) -> bytes | None | list[bytes | None]:
        if isinstance(index, slice):
            return list(self)[index]
        index = checked_index(index, len(self))
        part = bisect_right(self._starts, index) - 1
        return self._parts[part][index - self._starts[part]]

    def __iter__(self) -> Iterator[bytes | None]:
        return chain.from_iterable(self._parts)


def merge_batches(first: Batch, second: Batch) -> Batch:
    """One batch of ``first``'s records then ``second``'s (the next batch of the same generation):
    row ``i`` of ``second`` is row ``len(first) + i`` of the result. Nothing is copied but the
    partition ids and positions (a few bytes a record)."""
    if first.generation != second.generation or first.metadata.keys() != second.metadata.keys():
        msg = "only batches of one generation with the same metadata can be merged"
        raise ValueError(msg)
    metadata = {key: _concat(first.metadata[key], second.metadata[key]) for key in first.metadata}
    return Batch(
        values=ChainedValues([first.values, second.values]),
        pids=pa.concat_arrays([first.pids, second.pids]),
        positions=pa.concat_arrays([first.positions, second.positions]),
        metadata=metadata,
        first_positions={**second.first_positions, **first.first_positions},
        last_positions=_merge_max(first.last_positions, second.last_positions),
        ends=_merge_max(first.ends, second.ends),
        cursors={**first.cursors, **second.cursors},
        nbytes=first.nbytes + second.nbytes,
        generation=first.generation,
        opened_at=first.opened_at,
        closed_at=second.closed_at,
    )


def _merge_max(a: dict[int, int], b: dict[int, int]) -> dict[int, int]:
    merged = dict(a)
    for key, value in b.items():
        merged[key] = max(merged.get(key, value), value)
    return merged


def _concat(a: list[Any] | pa.Array, b: list[Any] | pa.Array) -> list[Any] | pa.Array:
    if isinstance(a, pa.Array) and isinstance(b, pa.Array) and a.type == b.type:
        return pa.concat_arrays([a, b])
    return [*(a.to_pylist() if isinstance(a, pa.Array) else a), *(b.to_pylist() if isinstance(b, pa.Array) else b)]
