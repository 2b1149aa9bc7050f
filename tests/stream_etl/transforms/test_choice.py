"""resolve_choice on columns whose type drifts between batches, and on union columns."""

from __future__ import annotations

import pyarrow as pa
import pytest

from stream_etl.errors import ConfigurationError
from stream_etl.records import LINEAGE
from stream_etl.transforms import ResolveChoice
from tests.stream_etl.transforms.helpers import assert_table, lineage, run, table

# The same field, decoded from two batches of JSON without a schema: 42 in one, "42" in the other.
AS_INT = table({"code": pa.array([42, None, 7], pa.int64())})
AS_TEXT = table({"code": pa.array(["42", None, "x7"], pa.string())})
# A union column (as a format with unions decodes it): values of two types, row by row.
UNION = table(
    {
        "code": pa.UnionArray.from_sparse(
            pa.array([0, 1, 0, 1], pa.int8()),
            [pa.array([1, None, 3, None], pa.int64()), pa.array([None, "b", None, "ñ"], pa.string())],
            ["int", "string"],
        )
    }
)
DENSE = table(
    {
        "code": pa.UnionArray.from_dense(
            pa.array([0, 1, 1, 0], pa.int8()),
            pa.array([0, 0, 1, 1], pa.int32()),
            [pa.array([5, 6], pa.int64()), pa.array(["é", "f"], pa.string())],
            ["int", "string"],
        )
    }
)


def test_cast_gives_one_type_whatever_the_batch_had() -> None:
    step = ResolveChoice({"code": "cast:string"})

    for data, values in [(AS_INT, ["42", None, "7"]), (AS_TEXT, ["42", None, "x7"]), (UNION, ["1", "b", "3", "ñ"])]:
        out, _ = run(step, data)
        assert_table(out, table({"code": pa.array(values, pa.string())}, rows=list(range(len(values)))))


def test_cast_of_text_that_does_not_parse_dead_letters_the_row() -> None:
    out, failures = run(ResolveChoice({"code": "cast:int64"}), AS_TEXT, "code_as_int")

    assert [(f.row, f.step) for f in failures] == [(2, "code_as_int")]
    assert_table(out, pa.table({"code": pa.array([42, None], pa.int64()), LINEAGE: lineage(0, 1)}))


def test_project_keeps_values_of_the_type_and_nulls_the_rest() -> None:
    step = ResolveChoice({"code": "project:int64"})

    out, _ = run(step, AS_INT)
    assert_table(out, AS_INT)
    out, _ = run(step, AS_TEXT)
    assert_table(out, table({"code": pa.array([None, None, None], pa.int64())}))
    out, _ = run(step, DENSE)
    assert_table(out, table({"code": pa.array([5, None, None, 6], pa.int64())}))


def test_make_cols_splits_by_kind_in_place() -> None:
    data = UNION.add_column(0, "id", pa.array(["a", "b", "c", "d"]))

    out, _ = run(ResolveChoice({"code": "make_cols"}), data)

    expected = pa.table(
        {
            "id": pa.array(["a", "b", "c", "d"]),
            "code_int": pa.array([1, None, 3, None], pa.int64()),
            "code_string": pa.array([None, "b", None, "ñ"], pa.string()),
            LINEAGE: lineage(0, 1, 2, 3),
        }
    )
    assert_table(out, expected)
    out, _ = run(ResolveChoice({"code": "make_cols"}), AS_TEXT)
    assert_table(out, table({"code_string": pa.array(["42", None, "x7"], pa.string())}))


def test_make_struct_has_one_field_per_kind() -> None:
    out, _ = run(ResolveChoice({"code": "make_struct"}), DENSE)

    struct = pa.StructArray.from_arrays(
        [pa.array([5, None, None, 6], pa.int64()), pa.array([None, "é", "f", None], pa.string())],
        names=["int", "string"],
    )
    assert_table(out, table({"code": struct}))


def test_empty_batches_and_all_null_columns() -> None:
    out, _ = run(ResolveChoice({"code": "cast:double"}), AS_INT.slice(0, 0))
    assert_table(out, table({"code": pa.array([], pa.float64())}))
    nulls = table({"code": pa.nulls(2)})
    out, _ = run(ResolveChoice({"code": "project:string"}), nulls)
    assert_table(out, table({"code": pa.array([None, None], pa.string())}))
    out, _ = run(ResolveChoice({"code": "make_cols"}), nulls)
    assert out is not None and out.column_names == [LINEAGE]


def test_an_absent_column_is_null_without_a_schema() -> None:
    step = ResolveChoice({"code": "cast:int64"})
    step.strict_columns = False
    out, _ = run(step, table({"id": [1]}))
    assert_table(out, table({"id": [1]}).append_column("code", pa.array([None], pa.int64())))


@pytest.mark.parametrize("spec", ["cast", "project:", "make_cols:int", "explode", "cast:nonsense"])
def test_bad_actions_fail_fast(spec: str) -> None:
    with pytest.raises(ConfigurationError):
        ResolveChoice({"code": spec})


@pytest.mark.parametrize("rows", [0, 2], ids=["an empty batch", "two rows"])
def test_cast_of_a_type_that_cannot_be_cast_dead_letters_the_batch_and_does_not_stop_the_run(rows: int) -> None:
    # Found by the property test: an "id" sent as a list, in a batch a filter had emptied.
    data = table({"id": pa.array([[1], [None, 2]][:rows], pa.list_(pa.int64()))})
    step = ResolveChoice({"id": "cast:string"})
    step.strict_columns = False

    out, failures = run(step, data, "choice")

    assert out is None
    assert [f.row for f in failures] == list(range(rows))
    assert all("list<item: int64>, which cannot be cast to string" in f.message for f in failures)


def test_cast_of_a_type_that_cannot_be_cast_with_a_declared_schema_is_a_configuration_error() -> None:
    data = table({"id": pa.array([[1]], pa.list_(pa.int64()))})

    with pytest.raises(ConfigurationError, match="cannot be cast to string"):
        run(ResolveChoice({"id": "cast:string"}), data, "choice")
