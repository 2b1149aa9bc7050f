"""apply_mapping, drop_null_fields, fill_missing_values: exact Arrow output."""

from __future__ import annotations

import pyarrow as pa
import pytest

from stream_etl.errors import ConfigurationError
from stream_etl.records import LINEAGE
from stream_etl.transforms import ApplyMapping, DropNullFields, FillMissingValues
from tests.stream_etl.transforms.helpers import assert_table, lineage, run, table

CUSTOMER = pa.struct([("name", pa.string()), ("address", pa.struct([("city", pa.string())]))])
ORDERS = table(
    {
        "id": pa.array([1, 2, None], pa.int64()),
        "amount": pa.array(["1.50", None, "3"], pa.string()),
        "customer": pa.array(
            [
                {"name": "Zoë", "address": {"city": "Zürich"}},
                None,
                {"name": "李", "address": None},
            ],
            CUSTOMER,
        ),
    }
)


def test_apply_mapping_renames_casts_projects_and_reaches_into_structs() -> None:
    step = ApplyMapping(
        [
            ("customer.address.city", "string", "city", "string"),
            ("id", "long", "order_id", "int32"),
            ("amount", "string", "amount", "double"),
            ("customer.name", "string", "customer_name", "string"),
        ]
    )

    out, failures = run(step, ORDERS)

    assert failures == []
    expected = pa.table(
        {
            "city": pa.array(["Zürich", None, None], pa.string()),
            "order_id": pa.array([1, 2, None], pa.int32()),
            "amount": pa.array([1.5, None, 3.0], pa.float64()),
            "customer_name": pa.array(["Zoë", None, "李"], pa.string()),
            LINEAGE: lineage(0, 1, 2),
        }
    )
    assert_table(out, expected)


def test_apply_mapping_dead_letters_only_the_rows_whose_value_does_not_fit() -> None:
    data = table({"amount": ["1", "x", "3", "4", "5", "6"]})

    out, failures = run(ApplyMapping([("amount", "string", "amount", "int64")]), data, "map_amount")

    assert [(f.row, f.step) for f in failures] == [(1, "map_amount")]
    assert_table(out, pa.table({"amount": pa.array([1, 3, 4, 5, 6], pa.int64()), LINEAGE: lineage(0, 2, 3, 4, 5)}))


def test_apply_mapping_of_an_empty_batch_gives_the_target_schema() -> None:
    empty = ORDERS.slice(0, 0)

    out, _ = run(ApplyMapping([("id", "int64", "key", "string")]), empty)

    assert_table(out, pa.table({"key": pa.array([], pa.string()), LINEAGE: lineage()}))


def test_apply_mapping_of_an_absent_field_is_null_without_a_schema_and_an_error_with_one() -> None:
    step = ApplyMapping([("id", "int64", "id", "int64"), ("missing.deep", "string", "m", "string")])
    step.strict_columns = False
    out, _ = run(step, ORDERS)
    assert out is not None
    assert out["m"].to_pylist() == [None, None, None]
    assert out.schema.field("m").type == pa.string()

    strict = ApplyMapping([("missing", "string", "m", "string")])
    with pytest.raises(ConfigurationError, match="no field 'missing'"):
        run(strict, ORDERS)


@pytest.mark.parametrize(
    "spec",
    [
        [],
        [("a", "string", "b")],
        [("a", "string", "x", "int64"), ("b", "string", "x", "int64")],
        [("a", "nope", "b", "int")],
    ],
    ids=["empty", "three-tuple", "duplicate-target", "unknown-type"],
)
def test_apply_mapping_refuses_bad_specs(spec: list[tuple[str, ...]]) -> None:
    with pytest.raises(ConfigurationError):
        ApplyMapping(spec)


def test_drop_null_fields_drops_all_null_columns_and_struct_fields() -> None:
    data = table(
        {
            "id": [1, 2],
            "nothing": pa.array([None, None], pa.string()),
            "typed_null": pa.nulls(2),
            "nested": pa.array(
                [{"a": 1, "b": None}, {"a": None, "b": None}], pa.struct([("a", pa.int64()), ("b", pa.string())])
            ),
            "note": ["ü", None],
        }
    )

    out, _ = run(DropNullFields(), data)

    expected = table(
        {
            "id": [1, 2],
            "nested": pa.array([{"a": 1}, {"a": None}], pa.struct([("a", pa.int64())])),
            "note": ["ü", None],
        }
    )
    assert_table(out, expected)


def test_drop_null_fields_limited_to_columns_and_empty_batches_unchanged() -> None:
    data = table({"a": pa.array([None], pa.int64()), "b": pa.array([None], pa.int64())})

    out, _ = run(DropNullFields(["a"]), data)
    assert out is not None and out.column_names == ["b", LINEAGE]

    empty = data.slice(0, 0)
    out, _ = run(DropNullFields(), empty)
    assert_table(out, empty)


def test_fill_missing_values_fills_nulls_with_constants_cast_to_the_column_type() -> None:
    data = table(
        {
            "country": pa.array(["DE", None, "日本"], pa.string()),
            "qty": pa.array([None, 2, None], pa.int32()),
            "all_null": pa.nulls(3),
        }
    )

    out, _ = run(FillMissingValues({"country": "unknown", "qty": 0, "all_null": "x", "absent": 1.5}), data)

    expected = table(
        {
            "country": pa.array(["DE", "unknown", "日本"], pa.string()),
            "qty": pa.array([0, 2, 0], pa.int32()),
            "all_null": pa.array(["x", "x", "x"], pa.string()),
        }
    ).append_column("absent", pa.array([1.5, 1.5, 1.5], pa.float64()))
    assert_table(out, expected)


def test_fill_missing_values_with_a_constant_of_the_wrong_type_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="does not fit column 'qty'"):
        run(FillMissingValues({"qty": "many"}), table({"qty": pa.array([None], pa.int64())}))
    with pytest.raises(ConfigurationError):
        FillMissingValues({})
