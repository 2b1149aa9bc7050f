"""Arrow's JSON reader, checked: it never hands back an invalid array.

When it infers types, ``pyarrow.json.read_json`` (at least up to pyarrow 26) builds invalid
lists from arrays that start with ``null``: ``{"a": [null, 1]}`` gives offsets ``[0, 2]`` over
a child of length 1, and an array of nulls only (``list<null>``) gets a child of the wrong
length even with an explicit schema (apache/arrow#51305). Nothing raises: the table's
offsets point past its data, so whatever reads the list later (``list_flatten``, ``take``,
a cast, a sink's writer) reads memory that is not there and the process dies with a
segmentation fault or an abort, far from the cause.

:func:`read_json` runs Arrow's cheap structural check (``validate()``, no pass over the
values) on every table. A table that fails it is read again with the inferred schema made
explicit (that path places leading nulls correctly) and the children of ``list<null>``
arrays rebuilt from their offsets (their values are nulls whatever they hold). A table still
invalid after that raises :class:`pyarrow.ArrowInvalid`, which callers treat as a value Arrow
refuses (decode and unbox dead-letter it), never as a crash.

The reader also recurses once per nesting level and overflows the thread's stack (a
segfault, not an exception) somewhere past 5,000 to 20,000 levels, depending on the stack.
:func:`too_deep` finds values nested deeper than a limit before Arrow sees them: a value of
``L`` bytes cannot nest deeper than ``L / 2`` levels, so only values longer than
``2 * max_depth`` are looked at, with C-speed counts and, for the few with that many
brackets, an exact measure (strings removed by a regex, brackets summed by Arrow).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import compress

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

#: Deepest nesting accepted by default (Jackson's default limit too): far below the depth
#: at which Arrow's recursive reader crashes the process.
MAX_DEPTH = 1000


def read_json(
    buffer: pa.Buffer | bytes,
    *,
    read_options: pa_json.ReadOptions | None = None,
    parse_options: pa_json.ParseOptions | None = None,
) -> pa.Table:
    """``pyarrow.json.read_json`` of ``buffer`` that returns a valid table or raises ``ArrowInvalid``."""
    source = pa.py_buffer(buffer) if isinstance(buffer, bytes) else buffer
    table = pa_json.read_json(pa.BufferReader(source), read_options=read_options, parse_options=parse_options)
    if _valid(table):
        return table
    # Read again with the types now known: explicit types keep the leading nulls.
    options = parse_options or pa_json.ParseOptions()
    explicit = pa_json.ParseOptions(
        explicit_schema=table.schema,
        newlines_in_values=options.newlines_in_values,
        unexpected_field_behavior=options.unexpected_field_behavior,
    )
    reread = pa_json.read_json(pa.BufferReader(source), read_options=read_options, parse_options=explicit)
    repaired = pa.table(
        [pa.chunked_array([_null_lists_fixed(c) for c in col.chunks], col.type) for col in reread.columns],
        schema=reread.schema,
    )
    if not _valid(repaired):
        msg = "Arrow's JSON reader built an invalid array from this input (apache/arrow#51305)"
        raise pa.ArrowInvalid(msg)
    return repaired


def _valid(table: pa.Table) -> bool:
    try:
        table.validate()
    except pa.ArrowInvalid:
        return False
    return True


def _null_lists_fixed(array: pa.Array) -> pa.Array:
    """``array`` with the child of every ``list<null>`` in it rebuilt to the length its offsets span."""
    type_ = array.type
    if not _has_null_list(type_):
        return array
    if pa.types.is_struct(type_):
        children = [_null_lists_fixed(array.field(i)) for i in range(type_.num_fields)]
        return pa.StructArray.from_arrays(
            children, fields=list(type_), mask=array.is_null() if array.null_count else None
        )
    # A list (or large list): offsets relative to its (unsliced) child.
    offsets = array.offsets
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    if pa.types.is_null(type_.value_type):
        child: pa.Array = pa.nulls(end - start)
    else:
        child = _null_lists_fixed(array.values.slice(start, end - start))
    relative = pc.subtract(offsets, pa.scalar(start, offsets.type)) if start else offsets
    validity = array.is_null() if array.null_count else None
    list_class = pa.LargeListArray if pa.types.is_large_list(type_) else pa.ListArray
    return list_class.from_arrays(relative, child, type=type_, mask=validity)


def _has_null_list(type_: pa.DataType) -> bool:
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        return pa.types.is_null(type_.value_type) or _has_null_list(type_.value_type)
    if pa.types.is_struct(type_):
        return any(_has_null_list(field.type) for field in type_)
    return False


def too_deep(values: Sequence[bytes], max_depth: int) -> bool:
    """True when some value nests deeper than ``max_depth`` (C-speed scans; see the module doc)."""
    long = compress(values, map((2 * max_depth).__lt__, map(len, values)))
    return any(_depth(value) > max_depth for value in long if value.count(b"{") + value.count(b"[") > max_depth)


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"{}[]")
_BRACKET_STEPS = bytes.maketrans(b"{[}]", b"\x01\x01\xff\xff")


def _depth(value: bytes) -> int:
    """How deep ``value`` nests (brackets inside strings do not count)."""
    brackets = _JSON_STRING.sub(b"", value).translate(_BRACKET_STEPS, _NOT_BRACKETS)
    if not brackets:
        return 0
    steps = pa.Array.from_buffers(pa.int8(), len(brackets), [None, pa.py_buffer(brackets)])
    deepest = pc.max(pc.cumulative_sum(steps.cast(pa.int32()))).as_py()
    return int(deepest or 0)
