"""Closes micro-batches on a record count, a byte size or a latency, whichever first.

The batcher keeps the chunks that sources return and concatenates them when the
batch closes: lists with C loops (``itertools.chain``) then into Arrow arrays; a native
reader's buffers and Arrow arrays with one copy and Arrow kernels.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from stream_etl.errors import ConfigurationError
from stream_etl.rawvalues import RawValues
from stream_etl.records import Batch, Chunk


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """When a micro-batch closes, how many closed batches may wait, and how many bytes may be in flight.

    ``max_in_flight_bytes`` bounds the raw record bytes read and not yet committed (the
    open batch, queued batches, the batch being prepared and the one being committed):
    at the bound the fetch thread pauses the source (Kafka: ``consumer.pause``) and
    resumes once commits release bytes. Default: ``(prefetch_batches + 3) * max_batch_bytes``,
    what the queues between the stages hold anyway. See docs/RELIABILITY.md for the
    whole memory budget (Arrow copies, the client's own fetch buffers).
    """

    max_batch_records: int = 100_000
    max_batch_bytes: int = 64 * 1024 * 1024
    max_batch_latency: timedelta = timedelta(seconds=1)
    prefetch_batches: int = 1
    max_in_flight_bytes: int | None = None

    @property
    def first_batch_records(self) -> int:
        """Where a run's first batch closes: with big batches (>= 50,000 records) an eighth of
        the size, so the first commit (which may create the table) and the decoding of what
        follows overlap the reading of the rest instead of waiting for a whole batch."""
        if self.max_batch_records >= 50_000:
            return self.max_batch_records // 8
        return self.max_batch_records

    @property
    def in_flight_bytes(self) -> int:
        """The effective bound on raw bytes read and not yet committed."""
        if self.max_in_flight_bytes is not None:
            return self.max_in_flight_bytes
        return (self.prefetch_batches + 3) * self.max_batch_bytes

    def __post_init__(self) -> None:
        if self.max_batch_records < 1:
            msg = f"max_batch_records must be >= 1, got {self.max_batch_records}"
            raise ConfigurationError(msg)
        if self.max_batch_bytes < 1:
            msg = f"max_batch_bytes must be >= 1, got {self.max_batch_bytes}"
            raise ConfigurationError(msg)
        if self.max_batch_latency <= timedelta(0):
            msg = f"max_batch_latency must be positive, got {self.max_batch_latency}"
            raise ConfigurationError(msg)
        if self.prefetch_batches < 1:
            msg = f"prefetch_batches must be >= 1, got {self.prefetch_batches}"
            raise ConfigurationError(msg)
        if self.max_in_flight_bytes is not None and self.max_in_flight_bytes < self.max_batch_bytes:
            msg = (
                f"max_in_flight_bytes ({self.max_in_flight_bytes}) must be >= max_batch_bytes "
                f"({self.max_batch_bytes}): a batch must fit; lower max_batch_bytes or raise max_in_flight_bytes"
            )
            raise ConfigurationError(msg)


class Batcher:
    """Accumulates chunks until a limit is reached, then hands out a :class:`Batch`."""

    def __init__(self, limits: BatchLimits, *, small_first: bool = True) -> None:
        self.limits = limits
        self._latency_s = limits.max_batch_latency.total_seconds()
        # The first batch's size (see BatchLimits.first_batch_records); the full size once one closed.
        self._max_records = limits.first_batch_records if small_first else limits.max_batch_records
        self._reset()

    def _reset(self) -> None:
        self._chunks: list[Chunk] = []
        self._records = 0
        self._ends: dict[int, int] = {}
        self._cursors: dict[int, str] = {}
        self._nbytes = 0
        self._opened_at: float | None = None

    def full_size(self) -> None:
        """Close the next batch at the full size too (nothing is committed early anyway:
        a reader that reads during its group join)."""
        self._max_records = self.limits.max_batch_records

    def clear(self) -> None:
        """Forget everything accumulated (after a rebalance or a re-seek)."""
        self._reset()

    def add(self, chunk: Chunk) -> None:
        if self._opened_at is None:
            self._opened_at = time.monotonic()
        if len(chunk):
            self._chunks.append(chunk)
            self._records += len(chunk)
        self._ends.update(chunk.ends)
        self._cursors.update(chunk.cursors)
        self._nbytes += chunk.nbytes

    @property
    def records(self) -> int:
        return self._records

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def room(self) -> int:
        """How many more records fit before the record limit."""
        return max(self._max_records - self._records, 0)

    def seconds_left(self) -> float:
        """Seconds until the open batch reaches its latency limit."""
        if self._opened_at is None:
            return self._latency_s
        return max(self._opened_at + self._latency_s - time.monotonic(), 0.0)

    def is_full(self) -> bool:
        if self._opened_at is None:
            return False
        return (
            self._records >= self._max_records
            or self._nbytes >= self.limits.max_batch_bytes
            or time.monotonic() - self._opened_at >= self._latency_s
        )

    def has_content(self) -> bool:
        return bool(self._records) or bool(self._ends)

    def close(self, generation: int) -> Batch:
        """Close the open batch and start a new one."""
        chunks = self._chunks
        values: Sequence[bytes | None]
        if chunks and all(c.native for c in chunks):
            values = RawValues.concat([c.values for c in chunks])  # type: ignore[misc]
        else:
            values = list(itertools.chain.from_iterable(c.values for c in chunks))
        pids = _concat([c.pids for c in chunks], pa.int32())
        positions = _concat([c.positions for c in chunks], pa.int64())
        metadata: dict[str, list[Any] | pa.Array] = {}
        for name in chunks[0].metadata if chunks else ():
            parts = [c.metadata[name] for c in chunks]
            if all(isinstance(p, pa.Array) for p in parts):
                metadata[name] = pa.concat_arrays(parts)
            else:
                metadata[name] = list(itertools.chain.from_iterable(_as_list(p) for p in parts))
        first, last = positions_per_partition(pids, positions)
        batch = Batch(
            values=values,
            pids=pids,  # type: ignore[arg-type]
            positions=positions,  # type: ignore[arg-type]
            metadata=metadata,
            first_positions=first,
            last_positions=last,
            ends=self._ends,
            cursors=self._cursors,
            nbytes=self._nbytes,
            generation=generation,
            opened_at=self._opened_at or time.monotonic(),
            closed_at=time.monotonic(),
        )
        self._reset()
        self._max_records = self.limits.max_batch_records
        return batch


def _concat(parts: list[list[int] | pa.Array], kind: pa.DataType) -> pa.Array:
    """One Arrow array of lists (one ``pa.array`` over a C-chained list) or arrays (``concat_arrays``)."""
    if parts and all(isinstance(p, pa.Array) for p in parts):
        return pa.concat_arrays(parts) if len(parts) > 1 else parts[0]
    return pa.array(list(itertools.chain.from_iterable(_as_list(p) for p in parts)), kind)


def _as_list(items: list[Any] | pa.Array) -> list[Any]:
    return items.to_pylist() if isinstance(items, pa.Array) else items


#: Up to this many partitions in a batch, positions_per_partition masks instead of grouping.
_MASKED_PARTITIONS = 16


def positions_per_partition(pids: pa.Array, positions: pa.Array) -> tuple[dict[int, int], dict[int, int]]:
    """Lowest and highest position for each partition id among the given rows.

    A batch usually holds a few partitions: one mask and one ``min_max`` kernel each (~0.4 ms
    per 100k rows) beat Acero's ``group_by`` (~4 ms, and ~20 ms to import on the first batch)."""
    if len(pids) == 0:
        return {}, {}
    ids = pc.unique(pids).to_pylist()
    if len(ids) <= _MASKED_PARTITIONS:
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        for pid in ids:
            found = pc.min_max(positions if len(ids) == 1 else positions.filter(pc.equal(pids, pid)))
            first[pid], last[pid] = found["min"].as_py(), found["max"].as_py()
        return first, last
    grouped = pa.table({"p": pids, "o": positions}).group_by("p").aggregate([("o", "min"), ("o", "max")])
    ids = grouped["p"].to_pylist()
    return (
        dict(zip(ids, grouped["o_min"].to_pylist(), strict=True)),
        dict(zip(ids, grouped["o_max"].to_pylist(), strict=True)),
    )
