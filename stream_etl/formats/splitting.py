"""Parse a batch in one call, and find the records a parser refuses by bisecting.

Formats whose parser reads many records from one buffer (CSV) use
:func:`parse_or_bisect`: the whole batch is parsed at once; only when that fails
are the values split in halves until each refused record is isolated. One bad
record costs a few extra parses of its neighbours, never the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyarrow as pa

from stream_etl.dead_letters import Failure
from stream_etl.records import LINEAGE

DECODE_STEP = "decode"

#: Parses values (already screened) into exactly one row each, or raises.
Parser = Callable[[Sequence[bytes]], pa.Table]


def decode_failure(row: int, message: str) -> Failure:
    return Failure(row, DECODE_STEP, "DecodeError", message)


def parse_or_bisect(
    rows: list[int], values: list[bytes], parse: Parser, failures: list[Failure]
) -> list[tuple[list[int], pa.Table]]:
    """Parse ``values`` (for batch rows ``rows``); returns the parts that parsed, in order.

    A part counts only when the parser returned exactly one row per value; a value
    the parser refuses on its own is added to ``failures`` with the parser's message.
    """
    parts: list[tuple[list[int], pa.Table]] = []
    _bisect(rows, values, parse, parts, failures)
    return parts


def _bisect(
    rows: list[int],
    values: list[bytes],
    parse: Parser,
    parts: list[tuple[list[int], pa.Table]],
    failures: list[Failure],
) -> None:
    if not rows:
        return
    try:
        table = parse(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
        if len(rows) == 1:
            failures.append(decode_failure(rows[0], _message(exc)))
            return
    else:
        if table.num_rows == len(rows):
            parts.append((rows, table))
            return
        if len(rows) == 1:
            failures.append(decode_failure(rows[0], f"value holds {table.num_rows} records; expected exactly one"))
            return
    half = len(rows) // 2
    _bisect(rows[:half], values[:half], parse, parts, failures)
    _bisect(rows[half:], values[half:], parse, parts, failures)


def combine(parts: list[tuple[list[int], pa.Table]]) -> pa.Table | None:
    """The parts as one table with the lineage column; types inferred per part are unified,
    and a column seen with conflicting types (a number here, text there) becomes text."""
    if not parts:
        return None
    tables = [t.append_column(LINEAGE, pa.array(r, pa.int32())) for r, t in parts]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    conflicting: set[str] = set()
    for table in tables:
        for field in table.schema:
            others = [t.schema.field(field.name).type for t in tables if field.name in t.column_names]
            if any(not _compatible(field.type, other) for other in others):
                conflicting.add(field.name)
    cast = []
    for table in tables:
        for name in conflicting & set(table.column_names):
            index = table.schema.get_field_index(name)
            table = table.set_column(index, name, table[name].cast(pa.string()))
        cast.append(table)
    return pa.concat_tables(cast, promote_options="permissive")


def _compatible(a: pa.DataType, b: pa.DataType) -> bool:
    try:
        pa.unify_schemas([pa.schema([("x", a)]), pa.schema([("x", b)])], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return False
    return True


def _message(exc: Exception) -> str:
    return str(exc).replace(" in row 0", "").strip() or type(exc).__name__
