"""Raw record values in one buffer: what a native source reader hands over instead of a list.

A :class:`RawValues` holds ``n`` values as ``v0 \\n v1 \\n ... v(n-1)`` (exactly
``b"\\n".join(values)``, which is what Arrow's JSON and CSV readers want) plus the start of
each value, so the JSON decoder parses the buffer as it is and nothing builds a Python object
per record. It is a :class:`~collections.abc.Sequence` of ``bytes | None``, so every consumer
of ``Batch.values`` (dead-letters, per-record decoders, previews) works unchanged; indexing
one value slices the buffer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

import pyarrow as pa
import pyarrow.compute as pc


def checked_index(index: int, n: int) -> int:
    """``index`` into ``n`` values, counted from the end when negative; IndexError when out of range."""
    if index < 0:
        index += n
    if not 0 <= index < n:
        msg = f"row {index} out of range for {n} values"
        raise IndexError(msg)
    return index


class RawValues(Sequence[bytes | None]):
    """``n`` values in one buffer.

    ``starts`` has ``n + 1`` int64 entries: value ``i`` is ``data[starts[i] : starts[i + 1] - 1]``
    (the ``- 1`` skips the separating newline; ``starts[n]`` is ``len(data) + 1``). ``nulls``
    are the rows whose value is null (Kafka tombstones): empty in the buffer. ``max_len`` is the
    longest value's length, ``nbytes`` the sum of the values' lengths. ``objects`` is True when
    the reader saw that every value starts with ``{`` and ends with ``}`` (False: unknown).
    """

    __slots__ = ("_list", "data", "max_len", "nbytes", "nulls", "objects", "starts")

    def __init__(
        self,
        data: bytes,
        starts: pa.Int64Array,
        nulls: Sequence[int] = (),
        *,
        max_len: int,
        nbytes: int,
        objects: bool = False,
    ):
        self.data = data
        self.starts = starts
        self.nulls = tuple(nulls)
        self.max_len = max_len
        self.nbytes = nbytes
        self.objects = objects
        self._list: list[bytes | None] | None = None

    @classmethod
    def from_buffers(
        cls,
        n: int,
        data: bytes,
        starts: bytes,
        nulls: Sequence[int],
        *,
        max_len: int,
        nbytes: int,
        objects: bool = False,
    ) -> RawValues:
        """From a native reader's buffers (``starts``: ``n + 1`` little-endian int64)."""
        offsets = pa.Array.from_buffers(pa.int64(), n + 1, [None, pa.py_buffer(starts)])
        return cls(data, offsets, nulls, max_len=max_len, nbytes=nbytes, objects=objects)

    @classmethod
    def concat(cls, parts: Sequence[RawValues]) -> RawValues:
        """One :class:`RawValues` of ``parts`` in order (one copy of the bytes; Arrow kernels for the starts)."""
        parts = [p for p in parts if len(p)]
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return cls(b"", pa.array([1], pa.int64()), max_len=0, nbytes=0)
        data = b"\n".join(p.data for p in parts)
        starts: list[pa.Array] = []
        nulls: list[int] = []
        shift = rows = 0
        for part in parts:
            n = len(part)
            starts.append(pc.add(part.starts.slice(0, n), pa.scalar(shift, pa.int64())))
            nulls.extend(row + rows for row in part.nulls)
            shift += len(part.data) + 1
            rows += n
        starts.append(pa.array([len(data) + 1], pa.int64()))
        return cls(
            data,
            pa.concat_arrays(starts),
            nulls,
            max_len=max(p.max_len for p in parts),
            nbytes=sum(p.nbytes for p in parts),
            objects=all(p.objects for p in parts),
        )

    def __len__(self) -> int:
        return len(self.starts) - 1

    @overload
    def __getitem__(self, index: int) -> bytes | None: ...

    @overload
    def __getitem__(self, index: slice) -> list[bytes | None]: ...

    def __getitem__(self, index: int | slice) -> bytes | None | list[bytes | None]:
        if isinstance(index, slice):
            return self.to_list()[index]
        index = checked_index(index, len(self))
        if self.nulls and index in self.nulls:
            return None
        return self.data[self.starts[index].as_py() : self.starts[index + 1].as_py() - 1]

    def __iter__(self) -> Iterator[bytes | None]:
        return iter(self.to_list())

    def to_list(self) -> list[bytes | None]:
        """The values as a list (a Python object per value: for per-record decoders and slow paths)."""
        if self._list is None:
            bounds = self.starts.to_pylist()
            data = self.data
            values: list[bytes | None] = [data[a : b - 1] for a, b in zip(bounds, bounds[1:], strict=False)]
            for row in self.nulls:
                values[row] = None
            self._list = values
        return self._list

    def __repr__(self) -> str:
        return f"<RawValues {len(self)} values, {self.nbytes} bytes>"
