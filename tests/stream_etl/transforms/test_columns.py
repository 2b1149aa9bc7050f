"""Select, Drop, Rename, Cast: they keep the lineage column; unsafe casts fail their rows only."""

from __future__ import annotations

import pyarrow as pa
import pytest

from stream_etl.dead_letters import Failure
from stream_etl.errors import ConfigurationError
from stream_etl.records import LINEAGE
from stream_etl.transforms import Cast, Drop, Rename, Select, Step, run_step
from stream_etl.transforms.columns import parse_type


def _table(**columns: list[object]) -> pa.Table:
    n = len(next(iter(columns.values())))
    return pa.table({**columns, LINEAGE: pa.array(range(n), pa.int32())})


def _named(step: Step, name: str) -> Step:
    step.name = name
    return step


ORDERS = _table(id=[1, 2, 3], user=["a", "b", "c"], amount=[1.5, 2.0, None])


def test_select_keeps_the_columns_in_the_given_order_and_the_lineage() -> None:
    out = Select(["amount", "id"]).apply(ORDERS)

    assert out.column_names == ["amount", "id", LINEAGE]
    assert out["id"].to_pylist() == [1, 2, 3]


def test_select_of_a_missing_column_names_the_columns_there_are() -> None:
    step = _named(Select(["id", "nope"]), "project")

    with pytest.raises(ConfigurationError) as raised:
        run_step(step, ORDERS, [])

    message = str(raised.value)
    assert "'project'" in message
    assert "['nope']" in message
    assert "['id', 'user', 'amount']" in message
    assert LINEAGE not in message


def test_select_needs_a_column() -> None:
    with pytest.raises(ConfigurationError, match="at least one column"):
        Select([])


def test_drop_removes_columns_and_ignores_absent_ones() -> None:
    out = Drop(["user", "not_there"]).apply(ORDERS)

    assert out.column_names == ["id", "amount", LINEAGE]


def test_drop_refuses_the_lineage_column() -> None:
    with pytest.raises(ConfigurationError, match="cannot be dropped"):
        Drop([LINEAGE])


def test_rename_renames_only_the_given_columns() -> None:
    out = Rename({"user": "customer", "amount": "total"}).apply(ORDERS)

    assert out.column_names == ["id", "customer", "total", LINEAGE]
    assert out["customer"].to_pylist() == ["a", "b", "c"]


def test_rename_of_a_missing_column_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="nope"):
        Rename({"nope": "x"}).apply(ORDERS)


@pytest.mark.parametrize(
    "mapping",
    [pytest.param({LINEAGE: "row"}, id="from-lineage"), pytest.param({"id": LINEAGE}, id="to-lineage")],
)
def test_rename_refuses_the_lineage_column(mapping: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="cannot be renamed"):
        Rename(mapping)


def test_cast_converts_columns_in_place() -> None:
    out = Cast({"id": "string", "amount": pa.float32()}).apply(ORDERS)

    assert out.column_names == ORDERS.column_names
    assert out.schema.field("id").type == pa.string()
    assert out.schema.field("amount").type == pa.float32()
    assert out["id"].to_pylist() == ["1", "2", "3"]


def test_cast_of_a_missing_column_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="nope"):
        run_step(_named(Cast({"nope": "int64"}), "cast_1"), ORDERS, [])


@pytest.mark.parametrize(
    ("values", "target", "bad_rows"),
    [
        pytest.param([1, 2, 300, 4, -129, 6], "int8", [2, 4], id="integer-overflow"),
        pytest.param(["1", "2", "x", "4", "", "6"], "int64", [2, 4], id="unparsable-string"),
        pytest.param([1.0, 2.5, 3.0, 4.0, 5.0, 6.25], "int64", [1, 5], id="float-truncation"),
        pytest.param(
            ["2026-01-01", "2026-02-30", None, "x", "2026-03-01", "2026-12-31"], "date32", [1, 3], id="bad-date"
        ),
    ],
)
def test_an_unsafe_cast_fails_only_the_rows_that_do_not_fit(
    values: list[object], target: str, bad_rows: list[int]
) -> None:
    table = _table(v=values)
    failures: list[Failure] = []

    out = run_step(_named(Cast({"v": target}), "to_" + target), table, failures)

    assert out is not None
    assert out.schema.field("v").type == parse_type(target)
    assert out[LINEAGE].to_pylist() == [i for i in range(len(values)) if i not in bad_rows]
    assert [f.row for f in failures] == bad_rows
    assert {f.step for f in failures} == {"to_" + target}
    assert {f.error_class for f in failures} == {"ArrowInvalid"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param("int", pa.int64(), id="int"),
        pytest.param("integer", pa.int64(), id="integer"),
        pytest.param("long", pa.int64(), id="long"),
        pytest.param("float", pa.float32(), id="float"),
        pytest.param("double", pa.float64(), id="double"),
        pytest.param("boolean", pa.bool_(), id="boolean"),
        pytest.param("VARCHAR", pa.string(), id="varchar-upper"),
        pytest.param("text", pa.string(), id="text"),
        pytest.param("int8", pa.int8(), id="int8"),
        pytest.param("date32", pa.date32(), id="date32"),
        pytest.param("timestamp", pa.timestamp("us"), id="timestamp"),
        pytest.param("timestamptz", pa.timestamp("us", tz="UTC"), id="timestamptz"),
        pytest.param("decimal(10,2)", pa.decimal128(10, 2), id="decimal"),
        pytest.param("decimal(10, 2)", pa.decimal128(10, 2), id="decimal-with-space"),
        pytest.param(pa.large_string(), pa.large_string(), id="arrow-type"),
    ],
)
def test_parse_type(spec: str | pa.DataType, expected: pa.DataType) -> None:
    assert parse_type(spec) == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param("timestamp[ms]", pa.timestamp("ms"), id="unit"),
        pytest.param("timestamp[ms, tz=UTC]", pa.timestamp("ms", tz="UTC"), id="unit-and-zone"),
    ],
)
def test_parse_type_keeps_a_timestamp_unit_and_zone(spec: str, expected: pa.DataType) -> None:
    assert parse_type(spec) == expected


def test_parse_type_of_an_unknown_name_suggests_names() -> None:
    with pytest.raises(ConfigurationError, match="unknown type 'bogus'; use an Arrow type"):
        parse_type("bogus")


@pytest.mark.parametrize(
    ("step", "text"),
    [
        pytest.param(Select(["a", "b"]), "select a, b", id="select"),
        pytest.param(Drop(["a"]), "drop a", id="drop"),
        pytest.param(Rename({"a": "b"}), "rename a -> b", id="rename"),
        pytest.param(Cast({"a": "int64"}), "cast a as int64", id="cast"),
    ],
)
def test_describe(step: Step, text: str) -> None:
    assert step.describe() == text
