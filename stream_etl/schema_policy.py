"""Fit a batch to a table's schema under a sink's evolution policy, per row, columnar.

Policies (``schema_mode``), for a table that exists:

============================  ===============================  ==================================
the batch has...              ``merge``                        ``strict``
============================  ===============================  ==================================
a column the table lacks      the column is added; earlier     rows with a value in it are
                              rows read null                   dead-lettered (rows where it is
                                                               null pass)
a column the table has,       values are cast to the table's type when lossless (int32 -> int64,
of another type               float32 -> float64, int -> double, "12" -> 12, 2.0 -> 2); a value
                              that does not fit (2.5 into a long, "abc" into an int) dead-letters
                              its row; the table's column type never changes
a column missing              null in those rows (a NOT NULL column: the rows are dead-lettered)
============================  ===============================  ==================================

With ``rescue_column`` set, no row is dead-lettered for a value: what would have
failed it (a field unknown under ``strict``, a value that does not fit its column)
is moved into that string column as a JSON object ``{"field": value, ...}`` and the
column gets null; the row is kept. Rows only lose their place to the dead letters
for a NOT NULL column they leave empty.

Everything is computed on whole columns; the only search is for the values of a
column whose cast fails, which halves the column's distinct values (not the batch)
until it finds them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

SchemaMode = Literal["merge", "strict"]

#: Below this many values a failing cast is tried value by value.
_ONE_BY_ONE = 8


@dataclass(slots=True)
class Aligned:
    """The batch shaped for the table, and the rows to dead-letter (a mask and a reason each)."""

    table: pa.Table
    rejected: list[tuple[pa.BooleanArray, str]] = field(default_factory=list)

    def reject_mask(self) -> pa.BooleanArray | None:
        if not self.rejected:
            return None
        mask = self.rejected[0][0]
        for other, _ in self.rejected[1:]:
            mask = pc.or_(mask, other)
        return mask


def align(
    data: pa.Table,
    target: pa.Schema,
    *,
    mode: SchemaMode,
    rescue_column: str | None,
    where: str,
) -> Aligned:
    """Shape ``data`` (no lineage column) for a table of schema ``target`` at ``where``."""
    n = data.num_rows
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    rejected: list[tuple[pa.BooleanArray, str]] = []
    rescued: dict[str, pa.Array] = {}
    for column_field in target:
        name = column_field.name
        if name == rescue_column:
            columns[name] = pa.nulls(n, pa.string())  # keeps the table's column order; filled below
            continue
        if name not in data.column_names or pa.types.is_null(data[name].type):
            columns[name] = pa.nulls(n, column_field.type)
            if not column_field.nullable:
                rejected.append((_all(n), f"column {name!r} is NOT NULL in {where} but the record has no value"))
            continue
        column: pa.Array | pa.ChunkedArray = data[name]  # chunks stay as they are unless cast
        if not column.type.equals(column_field.type):
            column, failing = _cast(data[name].combine_chunks(), column_field.type)
            if failing is not None:
                if rescue_column is not None:
                    original = data[name].combine_chunks()
                    rescued[name] = pc.if_else(failing, original, pa.scalar(None, original.type))
                else:
                    reason = (
                        f"field {name!r} ({data[name].type}) does not fit column {name!r} "
                        f"({column_field.type}) of {where}"
                    )
                    rejected.append((failing, reason))
        if not column_field.nullable and column.null_count:
            nulls = _array(pc.is_null(column))
            rejected.append((nulls, f"column {name!r} is NOT NULL in {where} but the value is null"))
        columns[name] = column
    for name in data.column_names:
        if name in columns or pa.types.is_null(data[name].type):
            continue
        if mode == "merge":
            columns[name] = data[name]
            continue
        if data[name].null_count == n:
            continue
        present = _array(pc.is_valid(data[name]))
        if rescue_column is not None:
            rescued[name] = data[name].combine_chunks()
        else:
            reason = (
                f"field {name!r} is not a column of {where} (schema_mode='strict'; set schema_mode='merge' to add it)"
            )
            rejected.append((present, reason))
    if rescue_column is not None:
        columns[rescue_column] = _rescue_json(rescued, n)
    return Aligned(pa.table(columns), rejected)


def _array(mask: pa.Array | pa.ChunkedArray) -> pa.BooleanArray:
    return mask.combine_chunks() if isinstance(mask, pa.ChunkedArray) else mask


def _all(n: int) -> pa.BooleanArray:
    return pa.array([True] * n, pa.bool_()) if n else pa.array([], pa.bool_())


def _cast(column: pa.Array, to: pa.DataType) -> tuple[pa.Array, pa.BooleanArray | None]:
    """``column`` cast to ``to`` without loss; values that do not fit become null and are flagged."""
    try:
        return pc.cast(column, to, safe=True), None
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError):
        # The types do not convert at all: every value fails, the column is null.
        failing = pc.is_valid(column)
        return pa.nulls(len(column), to), failing if pc.any(failing).as_py() else None
    except pa.ArrowInvalid:
        failing = _failing_values(column, to)
    if not pc.any(failing).as_py():
        return pa.nulls(len(column), to), None
    kept = pc.if_else(failing, pa.scalar(None, column.type), column)
    return pc.cast(kept, to, safe=True), failing


def _failing_values(column: pa.Array, to: pa.DataType) -> pa.BooleanArray:
    """Which values fail the cast: searched among the *distinct* values (a producer that
    changed a field's type usually repeats a few values), then mapped back to the rows."""
    distinct = pc.unique(column.drop_null())
    failing: list[int] = []
    _search(distinct, to, 0, failing)
    bad = distinct.take(pa.array(failing, pa.int64()))
    return pc.fill_null(pc.is_in(column, value_set=bad), False)


def _search(column: pa.Array, to: pa.DataType, offset: int, failing: list[int]) -> None:
    try:
        pc.cast(column, to, safe=True)
        return
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    if len(column) <= _ONE_BY_ONE:
        for i in range(len(column)):
            try:
                pc.cast(column.slice(i, 1), to, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                failing.append(offset + i)
        return
    half = len(column) // 2
    _search(column.slice(0, half), to, offset, failing)
    _search(column.slice(half), to, offset + half, failing)


def _rescue_json(rescued: dict[str, pa.Array], n: int) -> pa.Array:
    """One JSON object per row with the row's rescued non-null values (null where there are none)."""
    if not rescued:
        return pa.nulls(n, pa.string())
    names = sorted(rescued)
    batch = pa.table({f"c{i}": rescued[name] for i, name in enumerate(names)})
    # concat_ws skips NULL pieces, so a row's object holds only the fields it had.
    pieces = [
        f"CASE WHEN c{i} IS NOT NULL THEN {_sql_text(json.dumps(name) + ':')} || to_json(c{i}) END"
        for i, name in enumerate(names)
    ]
    query = f"SELECT NULLIF('{{' || concat_ws(',', {', '.join(pieces)}) || '}}', '{{}}') AS j FROM batch"  # noqa: S608 - names are quoted
    import duckdb  # only when rows are rescued: not loaded otherwise

    connection = duckdb.connect()
    try:
        connection.register("batch", batch)
        relation = connection.sql(query)
        result = relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()
    finally:
        connection.close()
    return result["j"].combine_chunks().cast(pa.string())


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _any_valid(arrays: Sequence[pa.Array]) -> pa.BooleanArray:
    mask = pc.is_valid(arrays[0])
    for array in arrays[1:]:
        mask = pc.or_(mask, pc.is_valid(array))
    return mask
