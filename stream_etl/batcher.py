"""Closes micro-batches on a record count, a byte size or a latency, whichever first.

The batcher only concatenates the lists that sources return (``list.extend`` is
a C loop) and turns them into Arrow arrays when the batch closes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pyarrow as pa

from stream_etl.errors import ConfigurationError
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

    def __init__(self, limits: BatchLimits) -> None:
        self.limits = limits
        self._latency_s = limits.max_batch_latency.total_seconds()
        self._reset()

    def _reset(self) -> None:
        self._values: list[bytes | None] = []
        self._pids: list[int] = []
        self._positions: list[int] = []
        self._metadata: dict[str, list[Any]] = {}
        self._ends: dict[int, int] = {}
        self._cursors: dict[int, str] = {}
        self._nbytes = 0
        self._opened_at: float | None = None

    def clear(self) -> None:
        """Forget everything accumulated (after a rebalance or a re-seek)."""
        self._reset()

    def add(self, chunk: Chunk) -> None:
        if self._opened_at is None:
            self._opened_at = time.monotonic()
        self._values.extend(chunk.values)
        self._pids.extend(chunk.pids)
        self._positions.extend(chunk.positions)
        for name, items in chunk.metadata.items():
            self._metadata.setdefault(name, []).extend(items)
        self._ends.update(chunk.ends)
        self._cursors.update(chunk.cursors)
        self._nbytes += chunk.nbytes

    @property
    def records(self) -> int:
        return len(self._values)

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def room(self) -> int:
        """How many more records fit before the record limit."""
        return max(self.limits.max_batch_records - len(self._values), 0)

    def seconds_left(self) -> float:
        """Seconds until the open batch reaches its latency limit."""
        if self._opened_at is None:
            return self._latency_s
        return max(self._opened_at + self._latency_s - time.monotonic(), 0.0)

    def is_full(self) -> bool:
        if self._opened_at is None:
            return False
        return (
            len(self._values) >= self.limits.max_batch_records
            or self._nbytes >= self.limits.max_batch_bytes
            or time.monotonic() - self._opened_at >= self._latency_s
        )

    def has_content(self) -> bool:
        return bool(self._values) or bool(self._ends)

    def close(self, generation: int) -> Batch:
        """Close the open batch and start a new one."""
        pids = pa.array(self._pids, pa.int32())
        positions = pa.array(self._positions, pa.int64())
        first, last = positions_per_partition(pids, positions)
        batch = Batch(
            values=self._values,
            pids=pids,
            positions=positions,
            metadata=self._metadata,
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
        return batch


def positions_per_partition(pids: pa.Array, positions: pa.Array) -> tuple[dict[int, int], dict[int, int]]:
    """Lowest and highest position for each partition id among the given rows."""
    if len(pids) == 0:
        return {}, {}
    grouped = pa.table({"p": pids, "o": positions}).group_by("p").aggregate([("o", "min"), ("o", "max")])
    ids = grouped["p"].to_pylist()
    return (
        dict(zip(ids, grouped["o_min"].to_pylist(), strict=True)),
        dict(zip(ids, grouped["o_max"].to_pylist(), strict=True)),
    )
