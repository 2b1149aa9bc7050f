"""Deterministic sample events for the demo, tests and benchmarks.

``order(i)`` is a ~120-byte JSON object (id, user, amount, ts, country, tags)
computed from ``i`` alone, so a test can recompute exactly what a table should hold.
About 1% of amounts are negative (the example topology filters them out).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa

COUNTRIES = ("DE", "FR", "US", "GB", "JP", "BR", "IN", "NL")
TAGS = ("new", "promo", "mobile", "gift", "express")
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)

ORDER_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("user", pa.string()),
        ("amount", pa.float64()),
        ("ts", pa.string()),
        ("country", pa.string()),
        ("tags", pa.list_(pa.string())),
    ]
)


def order(i: int) -> dict[str, Any]:
    """The ``i``-th sample order."""
    mixed = (i * 2654435761) % 4294967296
    return {
        "id": i,
        "user": f"user_{mixed % 5000:05d}",
        "amount": round((mixed % 100_000) / 200 - 5.0, 2),
        "ts": (EPOCH + timedelta(milliseconds=i * 37)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "country": COUNTRIES[mixed % len(COUNTRIES)],
        "tags": [TAGS[(mixed >> s) % len(TAGS)] for s in range((mixed >> 3) % 3)],
    }


def malformed(i: int) -> bytes:
    """A value that is not valid JSON, standing in for record ``i``."""
    return b'{"id": %d, "amount": oops' % i


def orders(count: int, *, start: int = 0, bad_every: int = 0) -> Iterator[bytes]:
    """``count`` encoded orders; with ``bad_every=n`` every n-th one is malformed."""
    for i in range(start, start + count):
        if bad_every and i % bad_every == bad_every - 1:
            yield malformed(i)
        else:
            yield orjson.dumps(order(i))


READING_SCHEMA = pa.schema(
    [("reading_id", pa.string()), ("device", pa.string()), ("ts", pa.string()), ("temperature", pa.float64())]
)


def reading(i: int, *, devices: int = 40) -> dict[str, Any]:
    """The ``i``-th IoT reading: ~10 per device per second of event time, out of order by up
    to 2 s; every 251st is 90 s late; every 97th is a retransmission of the one before it of
    its device (same reading id, a duplicate)."""
    if i % 97 == 96 and i >= devices:
        original = reading(i - devices, devices=devices)
        return original
    mixed = (i * 2654435761) % 4294967296
    jitter_ms = (mixed % 4000) - 2000
    late_ms = 90_000 if i % 251 == 250 else 0
    stamp = EPOCH + timedelta(milliseconds=i * 2.5 + jitter_ms - late_ms)
    return {
        "reading_id": f"r{i}",
        "device": f"dev-{i % devices:03d}",
        "ts": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "temperature": round(15 + (mixed % 2000) / 100, 2),
    }


def readings(count: int, *, start: int = 0) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` pairs: keyed by device, so a device's readings share a partition."""
    for i in range(start, start + count):
        value = reading(i)
        yield value["device"].encode(), orjson.dumps(value)


CLICK_SCHEMA = pa.schema([("click_id", pa.string()), ("user", pa.string()), ("page", pa.string()), ("ts", pa.string())])
PAGES = ("/", "/search", "/product", "/cart", "/checkout", "/help")


def click(i: int, *, users: int = 200) -> dict[str, Any]:
    """The ``i``-th click: users browse pages; every 23rd click is a double click (the same
    click id again, 150 ms later)."""
    if i % 23 == 22 and i >= 1:
        first = click(i - 1, users=users)
        stamp = datetime.fromisoformat(first["ts"].replace("Z", "+00:00")) + timedelta(milliseconds=150)
        return {**first, "ts": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")}
    mixed = (i * 2654435761) % 4294967296
    stamp = EPOCH + timedelta(milliseconds=i * 20 + mixed % 500)
    return {
        "click_id": f"c{i}",
        "user": f"user_{mixed % users:04d}",
        "page": PAGES[(mixed >> 5) % len(PAGES)],
        "ts": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


def clicks(count: int, *, start: int = 0) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` pairs keyed by user, so a user's clicks share a partition."""
    for i in range(start, start + count):
        value = click(i)
        yield value["user"].encode(), orjson.dumps(value)


#: A wide event (~2 KB of JSON, 50 columns) for the benchmark's wide-record scenario.
WIDE_SCHEMA = pa.schema(
    [("id", pa.int64()), ("ts", pa.string())]
    + [(f"label_{c:02d}", pa.string()) for c in range(16)]
    + [(f"metric_{c:02d}", pa.float64()) for c in range(16)]
    + [(f"count_{c:02d}", pa.int64()) for c in range(12)]
    + [(f"flag_{c:02d}", pa.bool_()) for c in range(4)]
)


def wide(i: int) -> dict[str, Any]:
    """The ``i``-th wide sample event."""
    mixed = (i * 2654435761) % 4294967296
    event: dict[str, Any] = {
        "id": i,
        "ts": (EPOCH + timedelta(milliseconds=i * 37)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    for c in range(16):
        event[f"label_{c:02d}"] = f"{COUNTRIES[(mixed >> c) % 8]}-{TAGS[(mixed >> (c + 3)) % 5]}-" + "x" * (60 + c)
    for c in range(16):
        event[f"metric_{c:02d}"] = round(((mixed >> c) % 1_000_000) / 997, 3)
    for c in range(12):
        event[f"count_{c:02d}"] = (mixed >> c) % 100_000
    for c in range(4):
        event[f"flag_{c:02d}"] = bool((mixed >> c) & 1)
    return event
