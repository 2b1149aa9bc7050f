"""Filter and Derive, with SQL text and with pyarrow.compute expressions, run through run_step."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from stream_etl.dead_letters import Failure
from stream_etl.errors import ConfigurationError
from stream_etl.records import LINEAGE
from stream_etl.transforms import Derive, Filter, Step, run_step


def _table(**columns: list[object]) -> pa.Table:
    n = len(next(iter(columns.values())))
    return pa.table({**columns, LINEAGE: pa.array(range(n), pa.int32())})


def _named(step: Step, name: str) -> Step:
    step.name = name
    return step


AMOUNTS = _table(id=[1, 2, 3, 4, 5], amount=[10.0, -1.0, None, 0.0, 7.5], country=["DE", "FR", "DE", None, "US"])


@pytest.mark.parametrize(
    "predicate",
    [
        pytest.param("amount >= 0", id="sql"),
        pytest.param(pc.field("amount") >= 0, id="arrow-expression"),
        pytest.param("amount >= 0 AND (id % 1 = 0)", id="sql-on-duckdb"),
    ],
)
def test_filter_keeps_rows_where_the_predicate_is_true_and_drops_false_and_null(
    predicate: str | pc.Expression,
) -> None:
    failures: list[Failure] = []

    out = run_step(_named(Filter(predicate), "valid"), AMOUNTS, failures)

    assert out is not None
    assert out["id"].to_pylist() == [1, 4, 5]
    assert out[LINEAGE].to_pylist() == [0, 3, 4]
    assert out.column_names == AMOUNTS.column_names
    assert failures == []


def test_filter_on_a_string_column_with_in() -> None:
    out = Filter("country IN ('DE', 'US')").apply(AMOUNTS)

    assert out["id"].to_pylist() == [1, 3, 5]


def test_filter_that_keeps_nothing_returns_an_empty_table_with_the_schema() -> None:
    out = run_step(_named(Filter("id > 100"), "none"), AMOUNTS, [])

    assert out is not None
    assert out.num_rows == 0
    assert out.schema == AMOUNTS.schema


def test_filter_with_a_predicate_that_is_not_boolean_is_a_configuration_error() -> None:
    step = _named(Filter("amount + 1"), "not_boolean")

    with pytest.raises(ConfigurationError, match="not a boolean"):
        run_step(step, AMOUNTS, [])


@pytest.mark.parametrize(
    "step",
    [
        pytest.param(Filter("missing > 1"), id="filter-compiled"),
        pytest.param(Filter("missing % 2 = 1"), id="filter-on-duckdb"),
        pytest.param(Derive("out", "missing + 1"), id="derive-compiled"),
    ],
)
def test_a_missing_column_is_a_configuration_error_like_in_select(step: Step) -> None:
    failures: list[Failure] = []

    with pytest.raises(ConfigurationError, match="missing"):
        run_step(_named(step, "uses_missing"), AMOUNTS, failures)
    assert failures == []


@pytest.mark.parametrize(
    "expression",
    [
        pytest.param("CAST(round(amount * 100) AS BIGINT)", id="sql"),
        pytest.param(pc.round(pc.field("amount") * 100).cast(pa.int64()), id="arrow-expression"),
        pytest.param("CAST(round(amount * 100) AS BIGINT) + (id % 1)", id="sql-on-duckdb"),
    ],
)
def test_derive_adds_a_column(expression: str | pc.Expression) -> None:
    out = run_step(_named(Derive("cents", expression), "cents"), AMOUNTS, [])

    assert out is not None
    assert out.column_names == ["id", "amount", "country", LINEAGE, "cents"]
    assert out["cents"].to_pylist() == [1000, -100, None, 0, 750]


def test_derive_replaces_an_existing_column_in_place() -> None:
    out = Derive("amount", "amount * 2").apply(AMOUNTS)

    assert out.column_names == AMOUNTS.column_names
    assert out["amount"].to_pylist() == [20.0, -2.0, None, 0.0, 15.0]


def test_derive_a_constant_fills_every_row() -> None:
    out = Derive("source", "'kafka'").apply(AMOUNTS)

    assert out["source"].to_pylist() == ["kafka"] * 5


def test_derive_dead_letters_only_the_rows_that_overflow() -> None:
    table = _table(id=[1, 2, 3, 4, 5, 6, 7, 8, 9], n=[1, 2, 2**62, 3, 4, 5, 2**62, 6, 7])
    failures: list[Failure] = []

    out = run_step(_named(Derive("n4", "n * 4"), "times_four"), table, failures)

    assert out is not None
    assert out["id"].to_pylist() == [1, 2, 4, 5, 6, 8, 9]
    assert out["n4"].to_pylist() == [4, 8, 12, 16, 20, 24, 28]
    assert [f.row for f in failures] == [2, 6]
    assert {f.step for f in failures} == {"times_four"}
    assert all("overflow" in f.message for f in failures)


def test_filter_dead_letters_only_the_rows_it_cannot_evaluate() -> None:
    table = _table(id=list(range(12)), code=["1", "2", "x", "4", "5", "6", "7", "8", "9", "y", "11", "12"])
    failures: list[Failure] = []

    out = run_step(_named(Filter("CAST(code AS BIGINT) > 5"), "big_codes"), table, failures)

    assert out is not None
    assert out["id"].to_pylist() == [5, 6, 7, 8, 10, 11]
    assert [(f.row, f.step, f.error_class) for f in failures] == [
        (2, "big_codes", "ArrowInvalid"),
        (9, "big_codes", "ArrowInvalid"),
    ]


def test_describe_shows_the_expression() -> None:
    assert Filter("amount >= 0").describe() == "filter amount >= 0"
    assert Derive("c", "a + b").describe() == "derive c = a + b"
