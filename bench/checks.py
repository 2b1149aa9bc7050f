"""What the output table must hold, its commit history, and the check that it holds it."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from stream_etl.samples import ORDER_SCHEMA


@dataclass(frozen=True, slots=True)
class Expected:
    """Computed from the produced bytes themselves (not from the generator's code)."""

    records: int
    rows: int
    id_sum: int
    amount_cents_sum: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def expected_output(values: Sequence[bytes]) -> Expected:
    """The rows topologies/orders.py keeps (amount >= 0) and two checksums over them."""
    table = pa_json.read_json(
        pa.py_buffer(b"\n".join(values)), parse_options=pa_json.ParseOptions(explicit_schema=ORDER_SCHEMA)
    )
    if table.num_rows != len(values):
        msg = f"the produced values parse into {table.num_rows} rows, not {len(values)}"
        raise RuntimeError(msg)
    kept = table.filter(pc.greater_equal(table["amount"], 0))
    cents = pc.cast(pc.round(pc.multiply(kept["amount"], 100), round_mode="half_towards_infinity"), pa.int64())
    return Expected(
        records=len(values),
        rows=kept.num_rows,
        id_sum=int(pc.sum(kept["id"]).as_py() or 0),
        amount_cents_sum=int(pc.sum(cents).as_py() or 0),
    )


@dataclass(frozen=True, slots=True)
class Commits:
    """The table's commits in version order, read from its Delta log."""

    versions: int
    first_at: float | None
    last_at: float | None
    first_records: int
    records: int
    rows: int
    write_ms: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def commit_history(history: list[dict[str, Any]]) -> Commits:
    """Commit times (s since the epoch) and per-commit input records, from ``DeltaTable.history()``.

    Input records per commit come from the positions stream-etl stores in every
    commit's metadata (``stream_etl.positions``, last offset per partition; the topic
    is fresh, so a partition's first offset is 0).
    """
    commits = sorted(history, key=lambda c: c["version"])
    previous: dict[str, int] = {}
    per_commit: list[int] = []
    rows = write_ms = 0
    for commit in commits:
        positions: dict[str, int] = json.loads(commit.get("stream_etl.positions", "{}"))
        per_commit.append(sum(last - previous.get(p, -1) for p, last in positions.items()))
        previous.update(positions)
        metrics = commit.get("operationMetrics") or {}
        rows += int(metrics.get("num_added_rows", 0))
        write_ms += int(metrics.get("execution_time_ms", 0))
    stamps = [c["timestamp"] / 1000 for c in commits]
    return Commits(
        versions=len(commits),
        first_at=stamps[0] if stamps else None,
        last_at=stamps[-1] if stamps else None,
        first_records=per_commit[0] if per_commit else 0,
        records=sum(per_commit),
        rows=rows,
        write_ms=write_ms,
    )


def verify_table(
    table: pa.Table,
    expected: Expected,
    *,
    stored_positions: dict[int, int | None],
    ends: dict[int, int],
) -> list[str]:
    """Problems found in the output (empty when it is right).

    ``table`` holds the columns ``id`` and ``amount_cents``; ``stored_positions`` are the
    txn versions of the table per partition, ``ends`` the topic's high watermarks.
    """
    problems: list[str] = []
    rows = table.num_rows
    if rows != expected.rows:
        problems.append(f"the table holds {rows:,} rows, expected {expected.rows:,}")
    distinct = int(pc.count_distinct(table["id"]).as_py() or 0)
    if distinct != rows:
        problems.append(f"{rows - distinct:,} duplicate ids in the table")
    id_sum = int(pc.sum(table["id"]).as_py() or 0)
    if id_sum != expected.id_sum:
        problems.append(f"sum(id) is {id_sum}, expected {expected.id_sum}")
    cents = int(pc.sum(table["amount_cents"]).as_py() or 0)
    if cents != expected.amount_cents_sum:
        problems.append(f"sum(amount_cents) is {cents}, expected {expected.amount_cents_sum}")
    for partition, end in sorted(ends.items()):
        stored = stored_positions.get(partition)
        if end > 0 and stored != end - 1:
            problems.append(f"partition {partition}: stored position {stored}, expected {end - 1}")
    return problems


def _sample_chunk(start: int, count: int) -> list[bytes]:
    from stream_etl.samples import orders

    return list(orders(count, start=start))


class SampleValues:
    """``stream_etl.samples.orders(records)`` generated in worker processes, one chunk per task.

    Start it first and collect it with :meth:`result` later: generating 1M records takes
    ~10 s of CPU, which overlaps with starting the stack.
    """

    def __init__(self, records: int, *, workers: int | None = None, chunk: int = 50_000) -> None:
        import concurrent.futures
        import multiprocessing
        import os

        self.started = time.perf_counter()
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers or os.cpu_count() or 1, mp_context=multiprocessing.get_context("spawn")
        )
        self._futures = [
            self._pool.submit(_sample_chunk, start, min(chunk, records - start)) for start in range(0, records, chunk)
        ]

    def result(self) -> tuple[list[bytes], float]:
        """The values in order, and the seconds from the start until they were all there."""
        try:
            values = [value for future in self._futures for value in future.result()]
        except BaseException:
            self.close()
            raise
        elapsed = time.perf_counter() - self.started
        self._pool.shutdown(wait=True)  # every task is done: the workers exit at once
        return values, elapsed

    def close(self) -> None:
        """Stop the workers without waiting for the chunks still being generated."""
        self._pool.shutdown(wait=False, cancel_futures=True)
