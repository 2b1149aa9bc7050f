"""Expression: SQL compiled to Arrow kernels must agree with DuckDB; the rest runs on DuckDB.

The differential tests evaluate each SQL expression twice over one small table with
nulls: through the compiled Arrow path, and with DuckDB directly. Where the module
documents a deliberate difference (``/`` by zero), a separate test pins the documented
behaviour instead.
"""

from __future__ import annotations

import math
import threading
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from stream_etl.errors import ConfigurationError
from stream_etl.transforms import Expression

TABLE = pa.table(
    {
        "i": pa.array([1, -2, None, 7, 0, 40], pa.int64()),
        "j": pa.array([3, 5, 5, None, -4, -1], pa.int64()),  # never zero: division is compared below
        "big": pa.array([2**53 + 1, 1, None, -(2**60), 3, 0], pa.int64()),
        "x": pa.array([2.5, -2.5, None, 0.5, 1.5, -0.25], pa.float64()),  # ties for rounding
        "y": pa.array([2.4, -2.6, 0.7, None, 1000.2, -0.4], pa.float64()),  # no ties
        "s": pa.array(["Ab", " \tcd ", None, "", "xYz", "Ab"], pa.string()),
        "ts": pa.array(["2026-01-01 00:00:00", "2026-02-28 12:30:00", None, "2026-03-01 08:00:00", None, None]),
        "b": pa.array([True, False, None, True, False, None], pa.bool_()),
        "st": pa.array([{"k": 1}, {"k": 2}, None, {"k": None}, {"k": 5}, {"k": 6}]),
    }
)


def _duckdb(sql: str, table: pa.Table = TABLE) -> list[Any]:
    """DuckDB's own result for ``sql`` over ``table``, one value per row."""
    connection = duckdb.connect()
    try:
        connection.register("batch", table)
        query = f"SELECT ({sql}) AS v FROM batch"  # noqa: S608 - test-owned SQL
        return [row[0] for row in connection.execute(query).fetchall()]
    finally:
        connection.close()


def _same(left: Any, right: Any) -> bool:
    """Equal as SQL values: numbers compared as numbers, floats approximately."""
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float | Decimal) and isinstance(right, int | float | Decimal):
        a, b = float(left), float(right)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or math.isclose(a, b, rel_tol=1e-12)
    return bool(left == right)


def _assert_same_values(got: list[Any], want: list[Any]) -> None:
    assert len(got) == len(want)
    mismatched = [(row, g, w) for row, (g, w) in enumerate(zip(got, want, strict=True)) if not _same(g, w)]
    assert not mismatched, f"(row, compiled, duckdb): {mismatched}"


COMPILED_AGREE = [
    "i",
    "42",
    "2.5",
    "'text'",
    "st.k + 1",
    "'it''s'",
    "big + 1",
    "abs(big)",
    pytest.param("CAST(x AS BIGINT)", id="cast-double-tie-to-bigint"),  # DuckDB 2: half to even
    pytest.param("concat(s, '-', s)", id="concat-with-null"),  # concat() skips NULLs
    pytest.param("trim(s)", id="trim-tab"),  # spaces only
    pytest.param("i IN (1.5, 7)", id="int-in-float-list"),
    pytest.param("big / 2", id="divide-big-int"),  # beyond 2**53
    pytest.param("big * 1.5", id="multiply-big-int-by-float"),
    pytest.param("CAST(ts AS TIMESTAMP)", id="cast-string-to-timestamp"),  # naive
]

#: NULL literals are typed by DuckDB from their context: these run on DuckDB.
NULL_LITERALS = [
    pytest.param("NULL", id="null"),
    pytest.param("i = NULL", id="equals-null"),
    pytest.param("b AND NULL", id="and-null-literal"),
    pytest.param("NOT NULL", id="not-null-literal"),
    pytest.param("COALESCE(i, NULL)", id="coalesce-null-literal"),
    pytest.param("s || NULL", id="concat-null-literal"),
    pytest.param("i IN (1, NULL)", id="in-list-with-null"),
    pytest.param("i NOT IN (1, NULL)", id="not-in-list-with-null"),
]


@pytest.mark.parametrize("sql", COMPILED_AGREE)
def test_compiled_expression_agrees_with_duckdb(sql: str) -> None:
    expression = Expression(sql)

    assert expression.compiled is True
    got = expression.evaluate(TABLE)
    assert len(got) == TABLE.num_rows
    _assert_same_values(got.to_pylist(), _duckdb(sql))


@pytest.mark.parametrize("sql", NULL_LITERALS)
def test_null_literals_run_on_duckdb_and_agree(sql: str) -> None:
    expression = Expression(sql)

    assert expression.compiled is False
    _assert_same_values(expression.evaluate(TABLE).to_pylist(), _duckdb(sql))


def test_an_integer_literal_beyond_int64_still_evaluates() -> None:
    sql = "big < 10000000000000000000"

    expression = Expression(sql)

    _assert_same_values(expression.evaluate(TABLE).to_pylist(), _duckdb(sql))


FALLBACK = [
    "i % 2",
    "i // 2",
    "CASE WHEN i > 0 THEN 'pos' ELSE 'neg' END",
    "substr(s, 1, 1)",
    "TRY_CAST(s AS INTEGER)",
    "CAST(i AS DECIMAL(10, 2))",
    "regexp_matches(s, '^A')",
    "greatest(i, j)",
    "i + j > 2 AND s LIKE 'A%'",
    "strlen(s)",
]


@pytest.mark.parametrize("sql", FALLBACK)
def test_expression_that_is_not_compiled_runs_on_duckdb(sql: str) -> None:
    expression = Expression(sql)

    assert expression.compiled is False
    got = expression.evaluate(TABLE)
    assert len(got) == TABLE.num_rows
    _assert_same_values(got.to_pylist(), _duckdb(sql))


def test_fallback_can_run_again_on_another_table() -> None:
    expression = Expression("i % 3")
    other = pa.table({"i": pa.array([9, 10, None], pa.int64())})

    assert expression.evaluate(TABLE).to_pylist() == _duckdb("i % 3")
    assert expression.evaluate(other).to_pylist() == [0, 1, None]


def test_fallback_evaluates_from_several_threads_at_once() -> None:
    expression = Expression("i % 5")
    tables = [pa.table({"i": pa.array(range(n, n + 200), pa.int64())}) for n in range(8)]
    results: dict[int, list[Any]] = {}

    def work(n: int) -> None:
        for _ in range(5):
            results[n] = expression.evaluate(tables[n]).to_pylist()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == {n: [v % 5 for v in range(n, n + 200)] for n in range(8)}


# Documented semantics (module docstring) ---------------------------------------------


def test_division_is_in_doubles() -> None:
    expression = Expression("i / 2")

    assert expression.compiled
    values = expression.evaluate(TABLE)
    assert values.type == pa.float64()
    assert values.to_pylist() == [0.5, -1.0, None, 3.5, 0.0, 20.0]


@pytest.mark.parametrize("sql", ["i / 0", "x / 0", "i / (j - j)", "x / 0.0"])
def test_division_by_zero_follows_duckdb(sql: str) -> None:
    expression = Expression(sql)

    assert expression.compiled
    _assert_same_values(expression.evaluate(TABLE).to_pylist(), _duckdb(sql))


def test_division_by_zero_in_some_rows_is_infinite_only_there() -> None:
    table = pa.table({"a": pa.array([6, 6, 0], pa.int64()), "d": pa.array([3, 0, 0], pa.int64())})

    values = Expression("a / d").evaluate(table).to_pylist()

    assert values[:2] == [2.0, math.inf] and math.isnan(values[2])


def test_division_by_zero_is_the_same_when_the_expression_runs_on_duckdb() -> None:
    compiled, fallback = Expression("i / 0"), Expression("CASE WHEN true THEN i / 0 END")

    assert compiled.compiled and not fallback.compiled
    _assert_same_values(fallback.evaluate(TABLE).to_pylist(), compiled.evaluate(TABLE).to_pylist())


def test_round_is_half_away_from_zero() -> None:
    table = pa.table({"v": [2.5, -2.5, 0.5, -0.5, 1.5, 2.45, 2.4]})

    assert Expression("round(v)").evaluate(table).to_pylist() == [3.0, -3.0, 1.0, -1.0, 2.0, 2.0, 2.0]
    assert Expression("round(v * 10)").evaluate(table).to_pylist() == [25.0, -25.0, 5.0, -5.0, 15.0, 25.0, 24.0]


def test_integer_cast_of_a_double_rounds_half_to_even_like_duckdb() -> None:
    table = pa.table({"v": [2.5, -2.5, 0.5, 1.5, 2.4, -2.6, None]})
    expression = Expression("CAST(v AS BIGINT)")

    values = expression.evaluate(table)

    assert values.type == pa.int64()
    assert values.to_pylist() == [2, -2, 0, 2, 2, -3, None]


@pytest.mark.parametrize(
    "sql",
    [
        pytest.param("big * big", id="multiply"),
        pytest.param("big + 9223372036854775807", id="add"),
        pytest.param("-(big - 9223372036854775807 - 1)", id="negate"),
    ],
)
def test_integer_overflow_is_an_error(sql: str) -> None:
    expression = Expression(sql)

    assert expression.compiled
    with pytest.raises(pa.ArrowInvalid, match="overflow"):
        expression.evaluate(TABLE)


# Construction -------------------------------------------------------------------------


def test_arrow_expression_is_compiled_and_evaluates() -> None:
    expression = Expression((pc.field("i") + pc.field("j")) * 2)

    assert expression.compiled
    assert expression.evaluate(TABLE).to_pylist() == [8, 6, None, None, -8, 78]


def test_constant_expression_is_repeated_for_every_row() -> None:
    values = Expression("'x'").evaluate(TABLE)

    assert values.to_pylist() == ["x"] * TABLE.num_rows


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        pytest.param("i +", "invalid SQL expression", id="syntax-error"),
        pytest.param("i, j", "expected one expression", id="two-expressions"),
        pytest.param("i FROM t", "expected one expression", id="from-clause"),
    ],
)
def test_bad_sql_is_a_configuration_error(sql: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Expression(sql)


def test_an_expression_of_another_type_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="got int"):
        Expression(42)  # type: ignore[arg-type]


def test_str_is_the_source_text() -> None:
    assert str(Expression("i > 1")) == "i > 1"
