"""Counters and timings of a run, and the summary printed at its end.

Records are accounted for by lineage, so the counts reconcile by record, not by
row: ``records_in = written + filtered + dead_lettered + already_committed``.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


def since_launch() -> str:
    """This process's wall and CPU seconds since it was launched, and its resident memory, for a log line.

    Linux only (``/proc``); elsewhere only the CPU seconds."""
    cpu = time.process_time()
    try:
        with open("/proc/self/stat", "rb") as f:
            started = int(f.read().rsplit(b")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/self/statm", "rb") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return f"{cpu:.2f} CPU-s after launch"
    wall = time.clock_gettime(time.CLOCK_BOOTTIME) - started
    return f"{wall:.2f} s ({cpu:.2f} CPU-s) after launch, {rss:.0f} MB resident"


@dataclass(slots=True)
class RunStats:
    """Mutable counters, updated by the run loop after each committed batch."""

    started_at: float = field(default_factory=time.monotonic)
    batches: int = 0
    records_in: int = 0
    bytes_in: int = 0
    written: int = 0
    filtered: int = 0
    dead_lettered: int = 0
    already_committed: int = 0
    stale_batches: int = 0
    conflicts: int = 0
    retries: int = 0
    #: Times the source was paused because the next stages were behind (backpressure).
    source_pauses: int = 0
    commits: int = 0
    first_commit_at: float | None = None
    last_commit_at: float | None = None
    decode_s: float = 0.0
    transform_s: float = 0.0
    commit_s: float = 0.0

    def account(
        self,
        records: int,
        nbytes: int,
        written: list[pa.Array],
        dead: pa.Array | None,
        replayed: list[pa.Array],
        *,
        batches: int = 1,
    ) -> None:
        """Count one commit's records (of ``batches`` fetched batches) by where their rows ended up (lineage ids)."""
        written_ids = _unique(written)
        dead_ids = _minus(_unique([dead] if dead is not None else []), [written_ids])
        replayed_ids = _minus(_unique(replayed), [written_ids, dead_ids])
        self.batches += batches
        self.records_in += records
        self.bytes_in += nbytes
        self.written += len(written_ids)
        self.dead_lettered += len(dead_ids)
        self.already_committed += len(replayed_ids)
        self.filtered += records - len(written_ids) - len(dead_ids) - len(replayed_ids)

    def committed(self) -> None:
        now = time.monotonic()
        self.commits += 1
        if self.first_commit_at is None:
            self.first_commit_at = now
        self.last_commit_at = now

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        elapsed = (self.last_commit_at or time.monotonic()) - self.started_at
        data["elapsed_s"] = round(elapsed, 3)
        data["records_per_s"] = round(self.records_in / elapsed, 1) if elapsed > 0 else 0.0
        for key in ("started_at", "first_commit_at", "last_commit_at"):
            data.pop(key)
        for key in ("decode_s", "transform_s", "commit_s"):
            data[key] = round(data[key], 3)
        return data


def _unique(arrays: list[pa.Array]) -> pa.Array:
    arrays = [a for a in arrays if a is not None and len(a)]
    if not arrays:
        return pa.array([], pa.int32())
    if len(arrays) == 1 and _increasing(arrays[0]):
        return arrays[0]  # the common case (one sink, rows in batch order): already unique
    return pc.unique(pa.chunked_array(arrays, pa.int32()).combine_chunks())


def _increasing(values: pa.Array) -> bool:
    """Strictly increasing, hence unique: a comparison, much cheaper than hashing."""
    if len(values) < 2:
        return True
    return bool(pc.all(pc.greater(values.slice(1), values.slice(0, len(values) - 1))).as_py())


def _minus(values: pa.Array, others: list[pa.Array]) -> pa.Array:
    for other in others:
        if len(values) and len(other):
            values = values.filter(pc.invert(pc.is_in(values, value_set=other)))
    return values
