"""The schema policy: exact outputs and rejected rows for each rule, on plain Arrow tables."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


TYPES = [pa.int32(), pa.int64(), pa.float64(), pa.string(), pa.bool_()]
VALUES = st.one_of(
    st.none(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["12", "2.5", "n/a", "", "true", "ü"]),
    st.booleans(),
)


@st.composite
def _column(draw: st.DrawFn, n: int) -> pa.Array:
    arrow_type = draw(st.sampled_from(TYPES))
    values = draw(st.lists(VALUES, min_size=n, max_size=n))
    out = []
    for value in values:  # keep only values that are of the column's type
        try:
            out.append(pa.array([value], arrow_type) if value is not None else pa.nulls(1, arrow_type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            out.append(pa.nulls(1, arrow_type))
    return pa.concat_arrays(out) if out else pa.array([], arrow_type)


@settings(max_examples=150, deadline=None)
@given(st.data(), st.integers(0, 12), st.sampled_from(["merge", "strict"]), st.booleans())
def test_every_row_is_kept_with_exact_values_or_rejected(data: st.DataObject, n: int, mode: str, rescue: bool) -> None:
    names = data.draw(st.lists(st.sampled_from("abcd"), unique=True, max_size=4))
    table = pa.table({name: data.draw(_column(n)) for name in names}) if names else pa.table({"a": pa.nulls(n)})
    target = pa.schema(
        [
            (name, data.draw(st.sampled_from(TYPES)))
            for name in data.draw(st.lists(st.sampled_from("abcd"), unique=True, min_size=1, max_size=4))
        ]
    )
    if rescue:
        target = target.append(pa.field("_r", pa.string()))

    aligned = align(table, target, mode=mode, rescue_column="_r" if rescue else None, where="t")  # type: ignore[arg-type]

    rejected = set(_rejected(aligned.rejected))
    assert aligned.table.num_rows == n
    assert aligned.table.schema.names[: len(target)] == target.names
    for field in target:
        if field.name == "_r" or field.name not in table.column_names:
            continue
        for i in range(n):
            if i in rejected:
                continue
            source = table[field.name][i]
            try:
                expected = pc.cast(pa.array([source.as_py()], source.type), field.type, safe=True)[0].as_py()
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                assert rescue, f"row {i}: {source} cannot be cast to {field.type} but was not rejected"
                assert aligned.table[field.name][i].as_py() is None
                continue
            assert aligned.table[field.name][i].as_py() == expected
