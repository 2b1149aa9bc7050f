"""A corpus of hostile Kafka records, shared by the decode unit tests and the end-to-end test.

Each case says what must become of it with the explicit schema of
``tests/e2e/bad_input_topology.py`` (:data:`SCHEMA`) and without one (inferred):
``written`` (checked field by field) or ``dead`` with a reason the dead-letter row's
error must contain (None: any reason). The ``id`` field carries the case's index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

SCHEMA = pa.schema([("id", pa.int64()), ("n", pa.int64()), ("f", pa.float64()), ("s", pa.string())])

#: Several MB: raise message.max.bytes on the producer, the broker and the consumer.
LARGE = 5 * 1024 * 1024
DEPTH = 10_000


@dataclass(frozen=True)
class Case:
    name: str
    value: bytes | None
    #: ("written", {field: value}) or ("dead", reason substring or None), per mode.
    with_schema: tuple[str, Any]
    inferred: tuple[str, Any]
    key: bytes | None = None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)


def _obj(i: int, body: bytes) -> bytes:
    return b'{"id": %d%s}' % (i, body)


def _deep(i: int) -> bytes:
    return _obj(i, b', "d": ' + b'{"d": ' * DEPTH + b"1" + b"}" * DEPTH)


def cases() -> list[Case]:
    """The corpus, in produce order (index = id = offset in a one-partition topic)."""
    ok = ("written", {"n": 1, "s": "ok"})
    builders: list[tuple[str, Any, tuple[str, Any], tuple[str, Any], dict[str, Any]]] = [
        ("good", lambda i: _obj(i, b', "n": 1, "s": "ok"'), ok, ok, {}),
        (
            "binary key and odd headers",
            lambda i: _obj(i, b', "n": 1, "s": "ok"'),
            ok,
            ok,
            {"key": b"\x00\xff\xfe", "headers": [("h", b"\xff\x00"), ("h", None), ("", b"")]},
        ),
        ("huge key", lambda i: _obj(i, b', "n": 1, "s": "ok"'), ok, ok, {"key": b"k" * 1_000_000}),
        ("invalid utf-8", lambda i: _obj(i, b', "s": "\xff\xfe"'), ("dead", "UTF-8"), ("dead", "UTF-8"), {}),
        ("invalid json", lambda i: _obj(i, b', "n": ,'), ("dead", None), ("dead", None), {}),
        ("truncated", lambda i: b'{"id": %d, "s": "abc' % i, ("dead", "does not end"), ("dead", "does not end"), {}),
        ("top-level array", lambda i: b"[%d, 2]" % i, ("dead", "JSON object"), ("dead", "JSON object"), {}),
        ("top-level number", lambda i: b"%d" % i, ("dead", "JSON object"), ("dead", "JSON object"), {}),
        ("top-level string", lambda i: b'"%d"' % i, ("dead", "JSON object"), ("dead", "JSON object"), {}),
        ("top-level null", lambda i: b"null", ("dead", "JSON object"), ("dead", "JSON object"), {}),
        ("duplicate keys", lambda i: _obj(i, b', "n": 1, "n": 2'), ("dead", "twice"), ("dead", "twice"), {}),
        (
            "integer beyond int64",
            lambda i: _obj(i, b', "n": 99999999999999999999999'),
            ("dead", "int64"),
            ("dead", None),  # inferred as double for the batch; the cast to the table's int64 fails
            {},
        ),
        ("number beyond double", lambda i: _obj(i, b', "f": 1e400'), ("dead", "too big"), ("dead", "too big"), {}),
        ("NaN", lambda i: _obj(i, b', "f": NaN'), ("written", {"f": "nan"}), ("written", {"f": "nan"}), {}),
        ("Infinity", lambda i: _obj(i, b', "f": Infinity'), ("written", {"f": "inf"}), ("written", {"f": "inf"}), {}),
        (
            "-Infinity",
            lambda i: _obj(i, b', "f": -Infinity'),
            ("written", {"f": "-inf"}),
            ("written", {"f": "-inf"}),
            {},
        ),
        ("NaN in an integer field", lambda i: _obj(i, b', "n": NaN'), ("dead", "NaN"), ("dead", None), {}),
        ("deep nesting", _deep, ("dead", "deeper than"), ("dead", "deeper than"), {}),
        (
            "large message",
            lambda i: _obj(i, b', "s": "' + b"x" * LARGE + b'"'),
            ("written", {"s": "x" * LARGE}),
            ("written", {"s": "x" * LARGE}),
            {},
        ),
        (
            "large and truncated",
            lambda i: _obj(i, b', "s": "' + b"y" * LARGE)[:-1],
            ("dead", "does not end"),
            ("dead", "does not end"),
            {},
        ),
        ("empty value", lambda i: b"", ("dead", "empty"), ("dead", "empty"), {}),
        ("whitespace value", lambda i: b" \t ", ("dead", "empty"), ("dead", "empty"), {}),
        ("tombstone", lambda i: None, ("dead", "tombstone"), ("dead", "tombstone"), {}),
        ("type drift", lambda i: _obj(i, b', "n": "text"'), ("dead", None), ("dead", None), {}),
        ("float in an integer field", lambda i: _obj(i, b', "n": 7.0'), ("dead", "int64"), ("written", {"n": 7}), {}),
        (
            "pretty-printed",
            lambda i: b'{\n  "id": %d,\n  "n": 3\n}' % i,
            ("written", {"n": 3}),
            ("written", {"n": 3}),
            {},
        ),
        (
            "byte order mark",
            lambda i: b"\xef\xbb\xbf" + _obj(i, b""),
            ("dead", "JSON object"),
            ("dead", "JSON object"),
            {},
        ),
        (
            "two objects",
            lambda i: _obj(i, b"") + b" " + _obj(i, b""),
            ("dead", "2 JSON objects"),
            ("dead", "2 JSON objects"),
            {},
        ),
        ("raw control character", lambda i: _obj(i, b', "s": "a\x01b"'), ("dead", None), ("dead", None), {}),
        ("lone surrogate", lambda i: _obj(i, b', "s": "\\ud800"'), ("dead", "surrogate"), ("dead", "surrogate"), {}),
        (
            "unicode escapes",
            lambda i: _obj(i, b', "s": "\\u00e9\\ud83d\\ude00\\u0000"'),
            ("written", {"s": "\u00e9\U0001f600\x00"}),
            ("written", {"s": "\u00e9\U0001f600\x00"}),
            {},
        ),
        (
            "empty object field",
            lambda i: _obj(i, b', "e": {}, "n": 5'),
            ("written", {"n": 5}),
            ("written", {"n": 5}),
            {},
        ),
        (
            "case-duplicate field",
            lambda i: _obj(i, b', "N": 5'),
            ("written", {"n": None}),  # not in the schema: ignored
            ("dead", "only in case"),
            {},
        ),
        ("unknown field", lambda i: _obj(i, b', "extra": 1, "n": 9'), ("written", {"n": 9}), ("written", {"n": 9}), {}),
        (
            "null fields",
            lambda i: _obj(i, b', "n": null, "s": null'),
            ("written", {"n": None}),
            ("written", {"n": None}),
            {},
        ),
    ]
    return [
        Case(name, build(i), with_schema, inferred, **extra)
        for i, (name, build, with_schema, inferred, extra) in enumerate(builders)
    ]
