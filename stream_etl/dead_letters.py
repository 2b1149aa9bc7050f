"""Dead letters: records that failed a stage, kept with everything needed to replay them.

A failure names the row (its index in the batch), the step that failed and the
error. :func:`dead_letter_table` turns a batch's failures into rows of
:data:`DEAD_LETTER_SCHEMA`: raw bytes, error class and message, step, source
position and time. The dead-letter destination is an ordinary sink, so these
rows are committed under the same exactly-once protocol as good rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

from stream_etl.records import LINEAGE, Batch, PartitionRegistry

DEAD_LETTER_SCHEMA = pa.schema(
    [
        pa.field("app_id", pa.string(), nullable=False),
        pa.field("step", pa.string(), nullable=False),
        pa.field("error_class", pa.string(), nullable=False),
        pa.field("error", pa.string(), nullable=False),
        pa.field("topic", pa.string(), nullable=False),
        pa.field("partition", pa.string(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("raw", pa.binary()),
        pa.field("dead_lettered_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


@dataclass(frozen=True, slots=True)
class Failure:
    """One record that failed ``step`` with an error."""

    row: int
    step: str
    error_class: str
    message: str

    @classmethod
    def of(cls, row: int, step: str, exc: BaseException) -> Failure:
        return cls(row, step, type(exc).__name__, str(exc) or repr(exc))


def failures_for_rows(rows: Sequence[int], step: str, exc: BaseException) -> list[Failure]:
    return [Failure.of(row, step, exc) for row in rows]


def dead_letter_table(
    batch: Batch,
    failures: Sequence[Failure],
    registry: PartitionRegistry,
    *,
    app_id: str,
    now: datetime | None = None,
) -> pa.Table:
    """Rows of :data:`DEAD_LETTER_SCHEMA` (plus the lineage column) for ``failures``.

    A record that failed several times (in several branches) is kept once, with
    its first failure.
    """
    seen: set[int] = set()
    unique: list[Failure] = []
    for failure in failures:  # failures are few: a loop per failed record is fine
        if failure.row not in seen:
            seen.add(failure.row)
            unique.append(failure)
    rows = [f.row for f in unique]
    pids = batch.pids.take(pa.array(rows, pa.int32())).to_pylist()
    partitions = [registry.partition(pid) for pid in pids]
    stamp = now or datetime.now(UTC)
    columns = {
        "app_id": pa.array([app_id] * len(unique), pa.string()),
        "step": pa.array([f.step for f in unique], pa.string()),
        "error_class": pa.array([f.error_class for f in unique], pa.string()),
        "error": pa.array([f.message for f in unique], pa.string()),
        "topic": pa.array([p.stream for p in partitions], pa.string()),
        "partition": pa.array([str(p.partition) for p in partitions], pa.string()),
        "offset": batch.positions.take(pa.array(rows, pa.int32())),
        "raw": pa.array([batch.values[row] for row in rows], pa.binary()),
        "dead_lettered_at": pa.array([stamp] * len(unique), pa.timestamp("us", tz="UTC")),
    }
    table = pa.Table.from_pydict(columns, schema=DEAD_LETTER_SCHEMA)
    return table.append_column(LINEAGE, pa.array(rows, pa.int32()))
