"""Shapes Delta cannot store are fixed or fail per row, before a write could fail the batch."""

from __future__ import annotations

import pyarrow as pa
import pytest

from connectors.delta.writable import writable


def _table(rows: list[dict[str, object]]) -> pa.Table:
    names: list[str] = []
    for row in rows:
        names += [k for k in row if k not in names]
    return pa.Table.from_pylist([{n: row.get(n) for n in names} for row in rows])


def test_empty_objects_are_dropped_at_any_struct_depth() -> None:
    table = _table([{"id": 1, "e": {}, "s": {"x": 1, "y": {}}}])

    out = writable(table, None)

    assert out.schema == pa.schema([("id", pa.int64()), ("s", pa.struct([("x", pa.int64())]))])
    assert out.to_pylist() == [{"id": 1, "s": {"x": 1}}]


def test_an_empty_object_inside_a_list_fails_only_the_rows_holding_one() -> None:
    table = pa.table({"id": [1, 2], "l": pa.array([[{}], None], pa.list_(pa.struct([])))})

    with pytest.raises(ValueError, match="empty object inside a list"):
        writable(table, None)
    assert writable(table.slice(1), None).column_names == ["id"]


def test_names_that_differ_only_in_case_keep_the_tables_spelling() -> None:
    table = _table([{"id": 1, "a": 1}, {"id": 2, "A": 2}])
    target = pa.schema([("id", pa.int64()), ("a", pa.int64())])

    with pytest.raises(ValueError, match="'A' differs from column 'a' only in case"):
        writable(table, target)
    assert writable(table.slice(0, 1), target).column_names == ["id", "a"]
    with pytest.raises(ValueError, match="only in case"):
        writable(table.slice(1, 1), target)


def test_without_a_table_the_lowest_spelling_wins() -> None:
    table = _table([{"id": 1, "b": 1}, {"id": 2, "B": 2}])

    assert writable(table.slice(1, 1).drop_columns(["b"]), None).column_names == ["id", "B"]
    with pytest.raises(ValueError, match="'b' differs from column 'B'"):
        writable(table.slice(0, 1), None)
