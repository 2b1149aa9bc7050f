"""Kafka metadata columns (``_topic``, ``_partition``, ``_offset``, ...), shared by both clients."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from stream_etl.records import Batch, PartitionRegistry

HEADERS_TYPE = pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))


def metadata_columns(
    wanted: Sequence[str], registry: PartitionRegistry, batch: Batch, rows: pa.Int32Array
) -> dict[str, pa.Array]:
    """The ``wanted`` metadata columns for ``rows`` of ``batch`` (Arrow ``take``s, no loop per row)."""
    columns: dict[str, pa.Array] = {}
    if not wanted:
        return columns
    pids = batch.pids.take(rows)
    partitions = [registry.partition(i) for i in range(len(registry))]
    if "topic" in wanted:
        columns["_topic"] = pa.array([p.stream for p in partitions], pa.string()).take(pids)
    if "partition" in wanted:
        columns["_partition"] = pa.array([int(p.partition) for p in partitions], pa.int32()).take(pids)
    if "offset" in wanted:
        columns["_offset"] = batch.positions.take(rows)
    if "timestamp" in wanted:
        stamps = _array(batch.metadata["timestamp"], pa.int64()).take(rows)
        columns["_timestamp"] = stamps.cast(pa.timestamp("ms", tz="UTC"))
    if "key" in wanted:
        columns["_key"] = _array(batch.metadata["key"], pa.binary()).take(rows)
    if "headers" in wanted:
        columns["_headers"] = _array(batch.metadata["headers"], HEADERS_TYPE).take(rows)
    return columns


def _array(items: list[Any] | pa.Array, kind: pa.DataType) -> pa.Array:
    """A native reader's column as it is; a client library's list as an Arrow array."""
    return items if isinstance(items, pa.Array) else pa.array(items, kind)
