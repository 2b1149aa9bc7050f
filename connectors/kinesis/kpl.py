"""De-aggregation of records written by the Kinesis Producer Library (KPL).

A KPL *aggregated* record packs many user records into one Kinesis record::

    magic (f3 89 9a c2) | protobuf AggregatedRecord | md5(protobuf) (16 bytes)

    message AggregatedRecord {
      repeated string partition_key_table     = 1;
      repeated string explicit_hash_key_table = 2;
      repeated Record records                 = 3;
    }
    message Record {
      required uint64 partition_key_index     = 1;
      optional uint64 explicit_hash_key_index = 2;
      required bytes  data                    = 3;
      repeated Tag    tags                    = 4;
    }

Only responses that hold an aggregated record take this path (one C-level scan of the
values finds them); it decodes the protobuf in Python, one loop per user record, which
is the documented exception to the columnar rule: a KPL record holds a few hundred
user records at most, and the alternative is not reading them. A record whose checksum
does not match is kept as it is, as the KCL does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from operator import methodcaller

MAGIC = b"\xf3\x89\x9a\xc2"
_DIGEST = 16


_STARTS_WITH_MAGIC = methodcaller("startswith", MAGIC)


def is_aggregated(value: bytes) -> bool:
    return value[:4] == MAGIC


def any_aggregated(values: Iterable[bytes]) -> bool:
    """Whether any value is an aggregated record: C-level calls only (no Python per record).

    One substring search over the joined values rules out the common case (no KPL at all)."""
    values = values if isinstance(values, list) else list(values)
    if MAGIC not in b"".join(values):
        return False
    return any(map(_STARTS_WITH_MAGIC, values))


def deaggregate(value: bytes, partition_key: str) -> tuple[list[bytes], list[str]] | None:
    """The user records (data, partition key) packed in ``value``; None if it is not a
    valid aggregated record (keep it whole)."""
    if len(value) < len(MAGIC) + _DIGEST or not is_aggregated(value):
        return None
    body = value[len(MAGIC) : -_DIGEST]
    if hashlib.md5(body, usedforsecurity=False).digest() != value[-_DIGEST:]:
        return None
    try:
        return _parse(body, partition_key)
    except (IndexError, ValueError, UnicodeDecodeError):
        return None


def expand(values: Sequence[bytes], keys: Sequence[str]) -> tuple[list[bytes], list[str], list[int], list[int]]:
    """Values and keys with aggregated records replaced by their user records.

    Also returns, per output record, the index of the Kinesis record it came from and its
    sub-sequence number within it (0 for plain records)."""
    out_values: list[bytes] = []
    out_keys: list[str] = []
    origin: list[int] = []
    sub: list[int] = []
    for index, (value, key) in enumerate(zip(values, keys, strict=True)):
        found = deaggregate(value, key) if is_aggregated(value) else None
        if found is None:
            out_values.append(value)
            out_keys.append(key)
            origin.append(index)
            sub.append(0)
        else:
            datas, user_keys = found
            out_values.extend(datas)
            out_keys.extend(user_keys)
            origin.extend([index] * len(datas))
            sub.extend(range(len(datas)))
    return out_values, out_keys, origin, sub


def _varint(buf: bytes, at: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[at]
        at += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, at
        shift += 7
        if shift > 63:
            msg = "varint too long"
            raise ValueError(msg)


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs of one protobuf message; varints and length-delimited only
    matter here, fixed-width fields are skipped."""
    out: list[tuple[int, int | bytes]] = []
    at, end = 0, len(buf)
    while at < end:
        tag, at = _varint(buf, at)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, at = _varint(buf, at)
            out.append((number, value))
        elif wire == 2:
            size, at = _varint(buf, at)
            if at + size > end:
                msg = "truncated field"
                raise ValueError(msg)
            out.append((number, buf[at : at + size]))
            at += size
        elif wire == 1:
            at += 8
        elif wire == 5:
            at += 4
        else:
            msg = f"unsupported wire type {wire}"
            raise ValueError(msg)
    return out


def _parse(body: bytes, fallback_key: str) -> tuple[list[bytes], list[str]]:
    keys: list[str] = []
    records: list[bytes] = []
    for number, value in _fields(body):
        if number == 1 and isinstance(value, bytes):
            keys.append(value.decode())
        elif number == 3 and isinstance(value, bytes):
            records.append(value)
    datas: list[bytes] = []
    user_keys: list[str] = []
    for record in records:
        key_index, data = 0, b""
        for number, value in _fields(record):
            if number == 1 and isinstance(value, int):
                key_index = value
            elif number == 3 and isinstance(value, bytes):
                data = value
        datas.append(data)
        user_keys.append(keys[key_index] if key_index < len(keys) else fallback_key)
    return datas, user_keys
