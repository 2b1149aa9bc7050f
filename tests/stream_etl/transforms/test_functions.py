"""MapBatches: user functions over Arrow tables, with lineage kept or re-attached."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from stream_etl.dead_letters import Failure
from stream_etl.errors import ConfigurationError
from stream_etl.records import LINEAGE
from stream_etl.transforms import MapBatches, run_step


def _table(**columns: list[object]) -> pa.Table:
    n = len(next(iter(columns.values())))
    return pa.table({**columns, LINEAGE: pa.array(range(n), pa.int32())})


def _map(fn: object, *, with_lineage: bool = False, name: str = "fn") -> MapBatches:
    step = MapBatches(fn, with_lineage=with_lineage)  # type: ignore[arg-type]
    step.name = name
    return step


EVENTS = _table(id=[1, 2, 3, 4], name=["a", "b", "c", "d"])


def test_a_row_count_preserving_function_gets_the_lineage_reattached() -> None:
    seen: list[list[str]] = []

    def upper(table: pa.Table) -> pa.Table:
        seen.append(table.column_names)
        return pa.table({"id": table["id"], "name": pc.utf8_upper(table["name"])})

    out = run_step(_map(upper), EVENTS, [])

    assert seen == [["id", "name"]]  # the function does not see the lineage column
    assert out is not None
    assert out.column_names == ["id", "name", LINEAGE]
    assert out["name"].to_pylist() == ["A", "B", "C", "D"]
    assert out[LINEAGE].to_pylist() == [0, 1, 2, 3]


def test_with_lineage_a_function_can_filter_and_reorder_rows() -> None:
    def evens_descending(table: pa.Table) -> pa.Table:
        assert LINEAGE in table.column_names
        evens = table.filter(pc.equal(pc.bit_wise_and(table["id"], 1), 0))
        return evens.sort_by([("id", "descending")])

    out = run_step(_map(evens_descending, with_lineage=True), EVENTS, [])

    assert out is not None
    assert out["id"].to_pylist() == [4, 2]
    assert out[LINEAGE].to_pylist() == [3, 1]


def test_changing_the_row_count_without_lineage_is_a_configuration_error() -> None:
    step = _map(lambda t: t.slice(0, 2), name="halve")

    with pytest.raises(ConfigurationError, match=r"'halve' changed the number of rows \(4 -> 2\)"):
        run_step(step, EVENTS, [])


def test_returning_something_else_than_a_table_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="returned dict"):
        run_step(_map(lambda t: {"id": [1]}, name="bad"), EVENTS, [])


def test_a_function_is_required() -> None:
    with pytest.raises(ConfigurationError, match="needs a function"):
        MapBatches("not callable")  # type: ignore[arg-type]


def test_a_function_that_raises_on_some_rows_dead_letters_only_those() -> None:
    table = _table(id=list(range(40)))

    def reject_multiples_of_seven(t: pa.Table) -> pa.Table:
        ids = t["id"].to_pylist()
        bad = [i for i in ids if i % 7 == 6]
        if bad:
            raise ValueError(f"ids {bad} are not allowed")
        return pa.table({"id": t["id"], "double": pc.multiply(t["id"], 2)})

    failures: list[Failure] = []

    out = run_step(_map(reject_multiples_of_seven, name="no_sixes"), table, failures)

    assert [f.row for f in failures] == [6, 13, 20, 27, 34]
    assert all(f.step == "no_sixes" and f.error_class == "ValueError" for f in failures)
    assert failures[0].message == "ids [6] are not allowed"
    assert out is not None
    assert out["id"].to_pylist() == [i for i in range(40) if i % 7 != 6]
    assert out[LINEAGE].to_pylist() == out["id"].to_pylist()
    assert out["double"].to_pylist() == [2 * i for i in out["id"].to_pylist()]


def test_describe_names_the_function() -> None:
    def enrich(table: pa.Table) -> pa.Table:
        return table

    assert MapBatches(enrich).describe() == "map_batches enrich"
