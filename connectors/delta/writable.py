"""Columns Delta Lake cannot store, found before the write instead of failing the commit.

Inferred JSON brings two shapes that Arrow holds and Delta refuses, and a refused
write would fail every retry of the batch:

- an empty object (``{}``) is an Arrow ``struct<>``, and Parquet has no empty group.
  Empty struct fields are dropped (they hold no value; a null and an empty object
  then read back the same). Inside a list there is nothing to drop them from: the
  rows holding one fail.
- Delta column names are case-insensitive: ``{"A": 1}`` and ``{"a": 2}`` are one
  column. The table's spelling wins, else the lowest in byte order; rows with a
  value under another spelling fail.

Failing rows are found by the run loop's bisection of the conform step (a
``ValueError`` here), so each goes to the dead letters with this module's reason.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def writable(data: pa.Table, target: pa.Schema | None) -> pa.Table:
    """``data`` without empty structs and case-duplicate columns; ValueError names a row's problem."""
    data = _without_empty_structs(data)
    known = set(target.names) if target is not None else set()
    groups: dict[str, list[str]] = {}
    for name in data.column_names:
        groups.setdefault(name.lower(), []).append(name)
    for names in groups.values():
        if len(names) < 2:
            continue
        winner = next((n for n in names if n in known), min(names))
        for loser in names:
            if loser == winner:
                continue
            if data[loser].null_count < data.num_rows:
                msg = (
                    f"field {loser!r} differs from column {winner!r} only in case; "
                    "Delta Lake column names are case-insensitive"
                )
                raise ValueError(msg)
            data = data.drop_columns([loser])
    return data


def _without_empty_structs(data: pa.Table) -> pa.Table:
    for name in list(data.column_names):
        column = data[name]
        cleaned = _clean(column.type)
        if cleaned is None:
            data = data.drop_columns([name])
        elif not cleaned.equals(column.type):
            data = data.set_column(data.schema.get_field_index(name), name, pc.cast(column, cleaned))
        elif _holds_empty_struct(cleaned):
            if column.null_count < data.num_rows:
                msg = f"field {name!r} holds an empty object inside a list, which Parquet cannot store"
                raise ValueError(msg)
            data = data.drop_columns([name])
    return data


def _clean(kind: pa.DataType) -> pa.DataType | None:
    """``kind`` without empty struct fields (through structs); None when nothing is left."""
    if not pa.types.is_struct(kind):
        return kind
    fields = []
    for i in range(kind.num_fields):
        field = kind.field(i)
        cleaned = _clean(field.type)
        if cleaned is not None:
            fields.append(field.with_type(cleaned))
    return pa.struct(fields) if fields else None


def _holds_empty_struct(kind: pa.DataType) -> bool:
    if pa.types.is_struct(kind):
        return kind.num_fields == 0 or any(_holds_empty_struct(kind.field(i).type) for i in range(kind.num_fields))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return _holds_empty_struct(kind.value_type)
    if pa.types.is_map(kind):
        return _holds_empty_struct(kind.key_type) or _holds_empty_struct(kind.item_type)
    return False
