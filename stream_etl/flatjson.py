"""A fast path for flat JSON objects with a declared schema (the C extension ``stream_etl._flatjson``).

Arrow's JSON reader is the largest cost of a micro-batch of small records (~80 ms per 100k
orders: RapidJSON builds each value's text, then a converter parses it again). Most streams carry
flat objects whose fields are numbers, strings, booleans or lists of those, and for those
``_flatjson`` writes each value straight into its column's Arrow buffers in one pass without the
GIL, about four times faster.

It accepts only what it reads exactly as ``pyarrow.json`` with the same explicit schema would
(``tests/stream_etl/test_flatjson.py`` compares the two on generated input) and returns ``None``
for anything else: a syntax error, a value of the wrong JSON type, an integer with a fraction,
a duplicate field, an unexpected field unless it is ignored, a nesting deeper than 64, ... The
decoder then hands the same buffer to Arrow, so a bad record still takes the usual path to the
dead-letter sink, and the fast path never changes a result, only how soon it comes.

Types it writes: int64, float64, string, bool, and lists of those (nullable fields and
elements). A schema with any other type (timestamps, structs, int32, ...) goes to Arrow.
``STREAM_ETL_FAST_JSON=0`` turns the fast path off.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from stream_etl.settings import switched_off

_flatjson: types.ModuleType | None
try:
    import stream_etl._flatjson as _flatjson
except ImportError:  # pragma: no cover - depends on the install having built it
    _flatjson = None

_KINDS = {pa.int64(): 1, pa.float64(): 2, pa.string(): 3, pa.bool_(): 4}
_LIST = 16


def enabled() -> bool:
    """Whether the extension is built and not turned off (``STREAM_ETL_FAST_JSON=0``)."""
    return _flatjson is not None and not switched_off("STREAM_ETL_FAST_JSON")


class FlatJson:
    """Parses newline-joined JSON objects into a table of ``schema``, or says it cannot.

    Build one with :meth:`for_schema`, which returns ``None`` when the schema has a type the
    fast path does not write or when the extension is not available.
    """

    __slots__ = ("_ignore", "_kinds", "_names", "_parse", "schema")

    def __init__(
        self, parse: Callable[..., Any], schema: pa.Schema, kinds: tuple[int, ...], *, ignore_unexpected: bool
    ) -> None:
        self._parse = parse
        self.schema = schema
        self._names = tuple(name.encode() for name in schema.names)
        self._kinds = kinds
        self._ignore = ignore_unexpected

    @classmethod
    def for_schema(cls, schema: pa.Schema | None, *, unexpected_fields: str) -> FlatJson | None:
        """The fast path for ``schema``, or ``None`` when it cannot take it.

        ``unexpected_fields``: ``ignore`` skips fields the schema does not name (after checking
        their syntax); with ``error`` or ``infer`` such a record goes to Arrow.
        """
        if _flatjson is None or not enabled() or schema is None or len(schema) == 0 or len(schema) > 1024:
            return None
        if len(set(schema.names)) != len(schema.names):
            return None
        kinds = []
        for field in schema:
            kind = _kind(field)
            if kind is None:
                return None
            kinds.append(kind)
        return cls(_flatjson.parse, schema, tuple(kinds), ignore_unexpected=unexpected_fields == "ignore")

    def parse(self, buffer: Any, n: int) -> pa.Table | None:
        """``n`` newline-separated objects of valid UTF-8 ``buffer``; ``None``: ask Arrow."""
        columns = self._parse(buffer, n, self._names, self._kinds, self._ignore)
        if columns is None:
            return None
        arrays = [_array(field.type, n, column) for field, column in zip(self.schema, columns, strict=True)]
        return pa.Table.from_arrays(arrays, schema=self.schema)


def _kind(field: pa.Field) -> int | None:
    if not field.nullable:
        return None  # Arrow raises for a missing value; let it
    type_ = field.type
    if pa.types.is_list(type_):
        item = type_.value_field
        kind = _KINDS.get(item.type)
        return kind | _LIST if kind is not None and item.nullable else None
    return _KINDS.get(type_)


def _array(type_: pa.DataType, length: int, column: tuple[Any, ...]) -> pa.Array:
    validity, nulls = column[0], column[1]
    bitmap = pa.py_buffer(validity) if validity is not None else None
    if pa.types.is_list(type_):
        offsets, child_length, child = column[2], column[3], column[4]
        values = _array(type_.value_type, child_length, child)
        return pa.Array.from_buffers(type_, length, [bitmap, pa.py_buffer(offsets)], nulls, children=[values])
    buffers = [bitmap, *(pa.py_buffer(b) for b in column[2:])]
    return pa.Array.from_buffers(type_, length, buffers, nulls)
