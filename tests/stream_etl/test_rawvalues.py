"""RawValues: a native reader's values in one buffer behave like the list they stand for."""

from __future__ import annotations

import struct

import pyarrow as pa
import pytest

from stream_etl.batcher import Batcher, BatchLimits
from stream_etl.decode import JsonFormat
from stream_etl.rawvalues import RawValues
from stream_etl.records import Chunk
from stream_etl.samples import malformed, orders


def raw(values: list[bytes | None], *, objects: bool | None = None) -> RawValues:
    """What the native reader returns for ``values`` (null values are empty in the buffer);
    ``objects`` as the reader finds it unless given."""
    data = b"\n".join(v or b"" for v in values)
    starts, at = [], 0
    for v in values:
        starts.append(at)
        at += len(v or b"") + 1
    starts.append(len(data) + 1)
    nulls = [i for i, v in enumerate(values) if v is None]
    lengths = [len(v) for v in values if v is not None]
    return RawValues.from_buffers(
        len(values),
        data,
        struct.pack(f"<{len(starts)}q", *starts),
        nulls,
        max_len=max(lengths, default=0),
        nbytes=sum(lengths),
        objects=all(v is not None and v[:1] == b"{" and v[-1:] == b"}" for v in values) if objects is None else objects,
    )


def test_indexing_slicing_and_iteration_give_the_values() -> None:
    values: list[bytes | None] = [b'{"a":1}', b"", None, b"x\ny", b'{"b":2}']
    found = raw(values)

    assert len(found) == 5
    assert [found[i] for i in range(5)] == values
    assert found[-1] == b'{"b":2}'
    assert found[1:3] == values[1:3]
    assert list(found) == values
    assert found.data == b'{"a":1}\n\n\nx\ny\n{"b":2}'
    with pytest.raises(IndexError):
        found[5]


def test_concat_keeps_order_rows_and_nulls() -> None:
    first: list[bytes | None] = [b"a", None, b"bb"]
    second: list[bytes | None] = [None, b"ccc"]
    third: list[bytes | None] = [b"d"]

    joined = RawValues.concat([raw(first), raw([]), raw(second), raw(third)])

    assert list(joined) == first + second + third
    assert joined.nulls == (1, 3)
    assert joined.max_len == 3 and joined.nbytes == 7
    assert joined.data == b"\n".join(v or b"" for v in first + second + third)


def test_the_batcher_joins_native_chunks_into_one_buffer() -> None:
    batcher = Batcher(BatchLimits(max_batch_records=10))
    for start in (0, 3):
        values = list(orders(3, start=start))
        batcher.add(
            Chunk(
                values=raw(values),
                pids=pa.array([0, 1, 0], pa.int32()),
                positions=pa.array([start, start, start + 1], pa.int64()),
                nbytes=sum(map(len, values)),
                metadata={"timestamp": pa.array([1, 2, 3], pa.int64())},
            )
        )

    batch = batcher.close(generation=0)

    assert isinstance(batch.values, RawValues)
    assert list(batch.values) == list(orders(6))
    assert batch.positions.to_pylist() == [0, 0, 1, 3, 3, 4]
    assert batch.last_positions == {0: 4, 1: 3} and batch.first_positions == {0: 0, 1: 0}
    assert batch.metadata["timestamp"].to_pylist() == [1, 2, 3, 1, 2, 3]


def test_a_mix_of_native_and_list_chunks_becomes_a_list_batch() -> None:
    batcher = Batcher(BatchLimits())
    batcher.add(
        Chunk(values=raw([b"a"]), pids=pa.array([0], pa.int32()), positions=pa.array([5], pa.int64()), nbytes=1)
    )
    batcher.add(Chunk(values=[b"b"], pids=[1], positions=[7], nbytes=1))

    batch = batcher.close(generation=0)

    assert batch.values == [b"a", b"b"]
    assert batch.pids.to_pylist() == [0, 1] and batch.positions.to_pylist() == [5, 7]


@pytest.mark.parametrize("bad_every", [0, 7])
def test_json_decodes_raw_values_as_it_decodes_the_list(bad_every: int) -> None:
    values: list[bytes | None] = list(orders(200))
    if bad_every:
        for i in range(0, 200, bad_every):
            values[i] = malformed(i)
        values[3] = None  # a tombstone
    fmt = JsonFormat()

    from_list = fmt.decode(values)
    from_raw = fmt.decode(raw(values))

    assert from_raw.table is not None and from_list.table is not None
    assert from_raw.table.equals(from_list.table)
    assert [(f.row, f.message) for f in from_raw.failures] == [(f.row, f.message) for f in from_list.failures]
    assert len(from_raw.failures) == (0 if not bad_every else len(range(0, 200, bad_every)) + 1)


def test_concat_knows_the_values_are_objects_only_when_every_part_does() -> None:
    assert RawValues.concat([raw([b'{"a":1}']), raw([b'{"a":2}'])]).objects is True
    assert RawValues.concat([raw([b'{"a":1}']), raw([b"[1]"])]).objects is False


@pytest.mark.parametrize(
    ("odd", "dead"),
    [(b'{"id":1}\n{"id":2}', [3]), (b'{"id":1} {"id":2}', [3]), (b'{"id":\n1}', [])],
    ids=["two objects on two lines", "two objects on one line", "a line break as whitespace"],
)
def test_values_known_to_be_objects_decode_as_the_scanned_list_does(odd: bytes, dead: list[int]) -> None:
    """The reader's objects flag skips the buffer scan, never the row count: a value holding
    two objects still goes, alone, to the dead letters, as on the list path."""
    values: list[bytes | None] = [*orders(3), odd, *orders(2)]

    flagged = JsonFormat().decode(raw(values, objects=True))
    scanned = JsonFormat().decode(values)

    assert flagged.table is not None and scanned.table is not None
    assert flagged.table.equals(scanned.table)
    assert [f.row for f in flagged.failures] == [f.row for f in scanned.failures] == dead
