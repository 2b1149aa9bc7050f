"""The sql step: DuckDB over the batch, lineage carried, failing rows bisected."""

from __future__ import annotations

import pyarrow as pa
import pytest

from stream_etl.errors import ConfigurationError
from stream_etl.records import LINEAGE
from stream_etl.transforms import Sql, SqlAggregate
from tests.stream_etl.transforms.helpers import assert_table, lineage, run, table

ORDERS = table(
    {
        "id": pa.array([1, 2, 3, 4], pa.int64()),
        "user": pa.array(["zoë", None, "李", "bob"], pa.string()),
        "amount": pa.array([1.5, 2.0, None, -1.0], pa.float64()),
        "address": pa.array([{"city": "Köln"}, None, {"city": "東京"}, {"city": None}]),
    }
)


def test_a_select_gets_the_lineage_column_added_and_keeps_row_order() -> None:
    step = Sql("SELECT id, upper(user) AS who, address.city AS city FROM batch WHERE amount IS NULL OR amount > 0")

    out, failures = run(step, ORDERS)

    assert failures == []
    expected = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "who": pa.array(["ZOË", None, "李"], pa.string()),
            "city": pa.array(["Köln", None, "東京"], pa.string()),
            LINEAGE: lineage(0, 1, 2),
        }
    )
    assert_table(out, expected)
    assert step.combines_rows is False


def test_select_star_keeps_everything() -> None:
    out, _ = run(Sql("SELECT * FROM batch"), ORDERS)
    assert_table(out, ORDERS)


def test_an_empty_batch_gives_an_empty_result_with_the_query_types() -> None:
    out, _ = run(Sql("SELECT id * 2 AS twice FROM batch"), ORDERS.slice(0, 0))
    assert_table(out, pa.table({"twice": pa.array([], pa.int64()), LINEAGE: lineage()}))


def test_rows_a_statement_fails_on_are_dead_lettered_the_rest_go_on() -> None:
    data = table({"code": ["1", "2", "x", "4", "5", "6", "y", "8"]})

    out, failures = run(Sql("SELECT CAST(code AS INTEGER) AS code FROM batch"), data, "parse_code")

    assert sorted(f.row for f in failures) == [2, 6]
    assert {f.step for f in failures} == {"parse_code"}
    assert_table(out, pa.table({"code": pa.array([1, 2, 4, 5, 6, 8], pa.int32()), LINEAGE: lineage(0, 1, 3, 4, 5, 7)}))


def test_an_aggregate_must_name_the_record_it_belongs_to() -> None:
    with pytest.raises(ConfigurationError, match="min\\(__stream_etl_row\\)"):
        Sql("SELECT user, count(*) AS n FROM batch GROUP BY user")

    step = SqlAggregate(f"SELECT count(*) AS n, min({LINEAGE}) AS {LINEAGE} FROM batch")  # noqa: S608
    out, _ = run(step, ORDERS)

    assert step.combines_rows and not step.row_local
    assert_table(out, pa.table({"n": pa.array([4], pa.int64()), LINEAGE: lineage(0)}))


@pytest.mark.parametrize(
    "statement",
    [
        "",
        "SELECT FROM WHERE",
        "SELECT 1; SELECT 2",
        "DELETE FROM batch",
        "SELECT a FROM batch UNION SELECT b FROM batch",
    ],
    ids=["empty", "syntax", "two", "delete", "union"],
)
def test_bad_statements_fail_fast(statement: str) -> None:
    with pytest.raises(ConfigurationError):
        Sql(statement)


def test_an_unknown_column_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="does not fit the batch"):
        run(Sql("SELECT nope FROM batch"), ORDERS)


@pytest.mark.parametrize(
    "statement",
    ["SELECT id, row_number() OVER (ORDER BY id DESC) AS r FROM batch", "SELECT id FROM batch LIMIT 2"],
    ids=["window", "limit"],
)
def test_statements_that_look_at_other_rows_get_lineage_but_are_not_bisected(statement: str) -> None:
    step = Sql(statement)
    assert step.combines_rows

    out, _ = run(SqlAggregate(statement), ORDERS)

    assert out is not None and out.num_rows >= 2
    assert out[LINEAGE].to_pylist() == [v - 1 for v in out["id"].to_pylist()]


def test_the_stream_method_picks_the_non_bisecting_step_for_such_statements() -> None:
    from stream_etl import Topology
    from stream_etl.testing import ListSource

    stream = Topology("t").source(ListSource([]))
    plain = stream.sql("SELECT * FROM batch", name="plain")
    windowed = stream.sql("SELECT id, rank() OVER (ORDER BY id) AS r FROM batch", name="windowed")
    nodes = {n.name: n.step for n in stream.topology.nodes if n.step is not None}

    assert nodes["plain"].row_local and not nodes["windowed"].row_local
    assert plain is not windowed
