"""The schema policy: exact outputs and rejected rows for each rule, on plain Arrow tables."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from stream_etl.schema_policy import align

TABLE = pa.schema([("id", pa.int64()), ("amount", pa.float64()), ("name", pa.string())])


def _rejected(aligned_rejected: list[tuple[pa.BooleanArray, str]]) -> dict[int, str]:
    out: dict[int, str] = {}
    for mask, reason in aligned_rejected:
        for i, bad in enumerate(mask.to_pylist()):
            if bad:
                out.setdefault(i, reason)
    return out


@pytest.mark.parametrize("mode", ["merge", "strict"])
def test_narrower_types_widen_losslessly_to_the_table(mode: str) -> None:
    data = pa.table({"id": pa.array([1, None], pa.int32()), "amount": pa.array([2, 3], pa.int64())})

    aligned = align(data, TABLE, mode=mode, rescue_column=None, where="t")  # type: ignore[arg-type]

    assert aligned.rejected == []
    assert aligned.table.schema == TABLE
    assert aligned.table.to_pylist() == [
        {"id": 1, "amount": 2.0, "name": None},
        {"id": None, "amount": 3.0, "name": None},
    ]


def test_values_that_do_not_fit_are_rejected_per_row_and_the_rest_cast() -> None:
    data = pa.table({"id": ["1", "x", None, "4"], "amount": [1.0, 2.0, 3.0, 4.0], "name": ["a", "b", "ü", "d"]})

    aligned = align(data, TABLE, mode="merge", rescue_column=None, where="t")

    assert _rejected(aligned.rejected) == {1: "field 'id' (string) does not fit column 'id' (int64) of t"}
    assert aligned.table["id"].to_pylist() == [1, None, None, 4]


def test_a_double_with_a_fraction_does_not_fit_a_long_column() -> None:
    data = pa.table({"id": [1.0, 2.5, 3.0] * 10})

    aligned = align(data, TABLE, mode="merge", rescue_column=None, where="t")

    assert sorted(_rejected(aligned.rejected)) == list(range(1, 30, 3))
    assert aligned.table["id"].to_pylist()[:3] == [1, None, 3]


def test_merge_keeps_new_columns_and_strict_rejects_rows_that_use_them() -> None:
    data = pa.table({"id": [1, 2, 3], "coupon": [None, "X", None], "empty": pa.nulls(3)})

    merged = align(data, TABLE, mode="merge", rescue_column=None, where="t")
    strict = align(data, TABLE, mode="strict", rescue_column=None, where="t")

    assert merged.rejected == []
    assert merged.table.column_names == ["id", "amount", "name", "coupon"]
    assert strict.table.column_names == ["id", "amount", "name"]
    assert _rejected(strict.rejected) == {
        1: "field 'coupon' is not a column of t (schema_mode='strict'; set schema_mode='merge' to add it)"
    }


def test_the_rescue_column_keeps_unknown_fields_and_misfits_as_json() -> None:
    table = TABLE.append(pa.field("_rescued", pa.string()))
    data = pa.table({"id": ["1", "x", "3"], "coupon": [None, "X", "é"], "name": ["a", "b", "c"]})

    aligned = align(data, table, mode="strict", rescue_column="_rescued", where="t")

    assert aligned.rejected == []
    assert aligned.table.schema == table
    assert aligned.table["id"].to_pylist() == [1, None, 3]
    rescued = [json.loads(v) if v is not None else None for v in aligned.table["_rescued"].to_pylist()]
    assert rescued == [None, {"coupon": "X", "id": "x"}, {"coupon": "é"}]


def test_not_null_columns_reject_rows_without_a_value() -> None:
    table = pa.schema([pa.field("id", pa.int64(), nullable=False), ("name", pa.string())])

    missing = align(pa.table({"name": ["a"]}), table, mode="merge", rescue_column=None, where="t")
    null = align(pa.table({"id": [1, None]}), table, mode="merge", rescue_column=None, where="t")

    assert _rejected(missing.rejected) == {0: "column 'id' is NOT NULL in t but the record has no value"}
    assert _rejected(null.rejected) == {1: "column 'id' is NOT NULL in t but the value is null"}


def test_types_that_do_not_convert_at_all_reject_every_row_with_a_value() -> None:
    data = pa.table({"name": pa.array([[1], None], pa.list_(pa.int64()))})

    aligned = align(data, TABLE, mode="merge", rescue_column=None, where="t")

    assert _rejected(aligned.rejected) == {
        0: "field 'name' (list<item: int64>) does not fit column 'name' (string) of t"
    }
    assert aligned.table["name"].to_pylist() == [None, None]
