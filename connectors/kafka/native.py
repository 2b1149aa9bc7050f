"""The Kafka source's native record path (the C extension ``connectors.kafka._native``).

:class:`NativeRecords` takes a confluent-kafka consumer's records off librdkafka in one call
per poll and returns a column-wise :class:`~stream_etl.records.Chunk` (values in one buffer,
Arrow arrays of partition ids and offsets): no Python object per record. The consumer itself
(metadata, assignment, rebalance callbacks, pause, seek, commits) stays confluent-kafka's.
See ``_native.c`` for how the records are routed around confluent-kafka's consumer queue.

The extension is built at install time when a C compiler is there (``setup.py``); without it,
or with ``STREAM_ETL_KAFKA_NATIVE=0``, the source reads through confluent-kafka's Python API
(same records, ~1 us more CPU per record).
"""

from __future__ import annotations

import os
import types
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from stream_etl.rawvalues import RawValues
from stream_etl.records import Chunk, PartitionRegistry, SourcePartition
from stream_etl.settings import switched_off

_native: types.ModuleType | None
try:
    import connectors.kafka._native as _native
except ImportError:  # pragma: no cover - depends on the install having built it
    _native = None

#: Metadata the native path can carry (headers need the per-record Python API).
NATIVE_METADATA = frozenset({"topic", "partition", "offset", "timestamp", "key"})

_loaded = False


def available(metadata: Sequence[str] = ()) -> bool:
    """Whether the native path is built, enabled and can carry ``metadata``."""
    if _native is None or switched_off("STREAM_ETL_KAFKA_NATIVE"):
        return False
    return set(metadata) <= NATIVE_METADATA


def _librdkafka_path() -> str:
    """The librdkafka this process loaded (confluent-kafka's), from /proc/self/maps."""
    with open("/proc/self/maps", encoding="utf-8") as maps:
        for line in maps:
            path = line.split()[-1] if line.strip() else ""
            if "librdkafka" in os.path.basename(path):
                return path
    msg = "librdkafka is not loaded in this process"
    raise ImportError(msg)


class NativeRecords:
    """Records of ``consumer``'s partitions, column-wise.

    ``registry`` gives each partition its id. Call :meth:`forward` for partitions before
    assigning them, and :meth:`close` before the consumer's close.
    """

    def __init__(self, consumer: Any, registry: PartitionRegistry, *, timestamps: bool, keys: bool) -> None:
        global _loaded  # noqa: PLW0603 - librdkafka's symbols are looked up once per process
        if _native is None:
            msg = "connectors.kafka._native is not built"
            raise ImportError(msg)
        if not _loaded:
            _native.load(_librdkafka_path())
            _loaded = True
        self._queue = _native.Queue(consumer)
        self.registry = registry
        self.timestamps = timestamps
        self.keys = keys
        self.closed = False

    def forward(self, partitions: Sequence[tuple[str, int]]) -> None:
        """Route these partitions' records here (before assigning them; again after a fetch stop)."""
        for topic, partition in partitions:
            self._queue.forward(topic, partition, self.registry.id_of(SourcePartition(topic, partition)))

    def heal(self) -> None:
        """Forward again every partition forwarded before: an unassign clears a partition's
        forwarding when its fetch stops, which can land after the next assignment's forward."""
        self._queue.reforward()

    def poll(self, max_records: int, timeout_s: float) -> tuple[Chunk | None, list[tuple[int, str, int, int, str]]]:
        """Up to ``max_records`` records as one chunk (None: none came), and the error events
        (code, topic, partition, offset, message) that came with them."""
        got = self._queue.consume(max_records, max(int(timeout_s * 1000), 0), self.timestamps, self.keys)
        if got is None:
            return None, []
        (
            n,
            data,
            starts,
            pids,
            offsets,
            max_len,
            nbytes,
            nulls,
            stamps,
            keys,
            key_starts,
            key_validity,
            errors,
            objects,
        ) = got
        if n == 0:
            return None, errors
        metadata: dict[str, list[Any] | pa.Array] = {}
        if stamps is not None:
            metadata["timestamp"] = pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(stamps)])
        if keys is not None:
            metadata["key"] = _binary(n, keys, key_starts, key_validity)
        chunk = Chunk(
            values=RawValues.from_buffers(n, data, starts, nulls, max_len=max_len, nbytes=nbytes, objects=objects),
            pids=pa.Array.from_buffers(pa.int32(), n, [None, pa.py_buffer(pids)]),
            positions=pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(offsets)]),
            nbytes=nbytes,
            metadata=metadata,
        )
        return chunk, errors

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._queue.close()


def _binary(n: int, data: bytes, starts: bytes, validity: bytes | None) -> pa.Array:
    """A binary Arrow array over the native buffers (``starts``: n + 1 int64 offsets)."""
    buffers = [None if validity is None else pa.py_buffer(validity), pa.py_buffer(starts), pa.py_buffer(data)]
    return pa.Array.from_buffers(pa.large_binary(), n, buffers).cast(pa.binary())
