"""flatten, explode, unbox, relationalize: exact Arrow output, nulls, empties, unicode."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pyarrow as pa
import pytest

from stream_etl.errors import ConfigurationError
from stream_etl.records import LINEAGE
from stream_etl.transforms import Explode, Flatten, Relationalize, RelationalizeChildren, Unbox
from tests.stream_etl.transforms.helpers import assert_table, lineage, run, table

ADDRESS = pa.struct([("city", pa.string()), ("geo", pa.struct([("lat", pa.float64()), ("lon", pa.float64())]))])
ITEM = pa.struct([("sku", pa.string()), ("qty", pa.int64())])


def test_flatten_nested_structs_recursively_with_null_parents() -> None:
    data = table(
        {
            "id": [1, 2, 3],
            "address": pa.array(
                [{"city": "Köln", "geo": {"lat": 50.9, "lon": 6.9}}, None, {"city": "東京", "geo": None}], ADDRESS
            ),
            "tags": pa.array([["a"], [], None], pa.list_(pa.string())),
        }
    )

    out, _ = run(Flatten(), data)

    expected = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "address_city": pa.array(["Köln", None, "東京"], pa.string()),
            "address_geo_lat": pa.array([50.9, None, None], pa.float64()),
            "address_geo_lon": pa.array([6.9, None, None], pa.float64()),
            "tags": pa.array([["a"], [], None], pa.list_(pa.string())),
            LINEAGE: lineage(0, 1, 2),
        }
    )
    assert_table(out, expected)


def test_flatten_with_a_dot_separator_and_only_some_columns() -> None:
    data = table({"a": pa.array([{"x": 1}], pa.struct([("x", pa.int64())])), "b": pa.array([{"y": "é"}])})

    out, _ = run(Flatten(separator=".", columns=["a"]), data)

    assert out is not None
    assert out.column_names == ["a.x", "b", LINEAGE]
    assert out.to_pylist() == [{"a.x": 1, "b": {"y": "é"}, LINEAGE: 0}]


def test_flatten_refuses_names_that_clash() -> None:
    data = table({"a": pa.array([{"b": 1}]), "a_b": [2]})
    with pytest.raises(ConfigurationError, match="twice"):
        run(Flatten(), data)


def test_flatten_of_an_empty_batch_keeps_the_flattened_schema() -> None:
    data = table({"a": pa.array([], ADDRESS)})
    out, _ = run(Flatten(), data)
    assert out is not None and out.num_rows == 0
    assert out.schema.names == ["a_city", "a_geo_lat", "a_geo_lon", LINEAGE]


LISTS = table(
    {
        "id": [1, 2, 3, 4],
        "tags": pa.array([["x", "ÿ"], [], None, ["z"]], pa.list_(pa.string())),
    }
)


def test_explode_gives_one_row_per_element_and_drops_empty_and_null_lists() -> None:
    out, _ = run(Explode("tags", index="pos"), LISTS)

    expected = pa.table(
        {
            "id": pa.array([1, 1, 4], pa.int64()),
            "tags": pa.array(["x", "ÿ", "z"], pa.string()),
            LINEAGE: lineage(0, 0, 3),
            "pos": pa.array([0, 1, 0], pa.int64()),
        }
    )
    assert_table(out, expected)


def test_explode_keeping_empty_and_null_lists_as_one_null_row() -> None:
    out, _ = run(Explode("tags", keep_empty=True, index="pos"), LISTS)

    expected = pa.table(
        {
            "id": pa.array([1, 1, 2, 3, 4], pa.int64()),
            "tags": pa.array(["x", "ÿ", None, None, "z"], pa.string()),
            LINEAGE: lineage(0, 0, 1, 2, 3),
            "pos": pa.array([0, 1, None, None, 0], pa.int64()),
        }
    )
    assert_table(out, expected)


def test_explode_of_lists_unboxed_with_leading_nulls() -> None:
    unboxed, _ = run(Unbox("doc"), table({"doc": ['{"tags": [null, "x"]}', '{"tags": [null, null]}']}))
    assert unboxed is not None
    data = Flatten(separator=".").apply(unboxed)

    out, failures = run(Explode("doc.tags", keep_empty=True, index="pos"), data)

    assert not failures
    assert out is not None
    out.validate(full=True)
    assert out.select(["doc.tags", "pos", LINEAGE]).to_pylist() == [
        {"doc.tags": None, "pos": 0, LINEAGE: 0},
        {"doc.tags": "x", "pos": 1, LINEAGE: 0},
        {"doc.tags": None, "pos": 0, LINEAGE: 1},
        {"doc.tags": None, "pos": 1, LINEAGE: 1},
    ]


def test_explode_a_list_of_structs_of_a_sliced_chunked_column() -> None:
    items = pa.array([[{"sku": "a", "qty": 1}], [{"sku": "b", "qty": 2}, {"sku": "c", "qty": None}]], pa.list_(ITEM))
    data = pa.concat_tables([table({"items": items}), table({"items": items}, rows=[2, 3])]).slice(1, 2)

    out, _ = run(Explode("items"), data)

    expected = pa.table(
        {
            "items": pa.array([{"sku": "b", "qty": 2}, {"sku": "c", "qty": None}, {"sku": "a", "qty": 1}], ITEM),
            LINEAGE: lineage(1, 1, 2),
        }
    )
    assert_table(out, expected)


def test_explode_of_an_empty_batch_and_of_a_non_list_column() -> None:
    out, _ = run(Explode("tags"), LISTS.slice(0, 0))
    assert_table(out, table({"id": pa.array([], pa.int64()), "tags": pa.array([], pa.string())}))
    with pytest.raises(ConfigurationError, match="not a list"):
        run(Explode("id"), LISTS)


PAYLOAD_SCHEMA = pa.schema([("kind", pa.string()), ("n", pa.int64())])


def test_unbox_parses_json_text_into_a_struct_with_a_schema() -> None:
    data = table({"payload": ['{"kind": "ä", "n": 1, "extra": true}', None, '{\n "n": 2\n}', '{"kind": "日本"}']})

    out, failures = run(Unbox("payload", schema=PAYLOAD_SCHEMA), data)

    assert failures == []
    expected = table(
        {
            "payload": pa.array(
                [{"kind": "ä", "n": 1}, None, {"kind": None, "n": 2}, {"kind": "日本", "n": None}],
                pa.struct(list(PAYLOAD_SCHEMA)),
            )
        }
    )
    assert_table(out, expected)


def test_unbox_infers_nested_types_without_a_schema() -> None:
    data = table({"payload": ['{"a": {"b": [1, 2]}}', '{"a": {"b": []}}']})

    out, _ = run(Unbox("payload"), data)

    assert out is not None
    assert out.schema.field("payload").type == pa.struct([("a", pa.struct([("b", pa.list_(pa.int64()))]))])
    assert out["payload"].to_pylist() == [{"a": {"b": [1, 2]}}, {"a": {"b": []}}]


def test_unbox_dead_letters_rows_whose_text_is_not_one_json_object() -> None:
    values = ['{"n": 1}', "not json", '{"n": 3}', "", '{"n": "x"}', "[1]", '{"n": 7}', "5", '{"n": 9}']
    data = table({"payload": values})

    out, failures = run(Unbox("payload", schema=PAYLOAD_SCHEMA), data, "unbox_payload")

    assert sorted(f.row for f in failures) == [1, 3, 4, 5, 7]
    assert {f.step for f in failures} == {"unbox_payload"}
    assert out is not None
    assert out["payload"].to_pylist() == [{"kind": None, "n": n} for n in (1, 3, 7, 9)]
    assert out[LINEAGE].to_pylist() == [0, 2, 6, 8]


@pytest.mark.parametrize("schema", [PAYLOAD_SCHEMA, None], ids=["schema", "inferred"])
def test_unbox_dead_letters_a_top_level_null_that_crashes_arrows_reader(schema: pa.Schema | None) -> None:
    data = table({"payload": ['{"n": 1}', "null", " null ", '{"n": 2}']})

    out, failures = run(Unbox("payload", schema=schema), data, "unbox_payload")

    assert sorted(f.row for f in failures) == [1, 2]
    assert out is not None
    assert out[LINEAGE].to_pylist() == [0, 3]
    assert [v["n"] for v in out["payload"].to_pylist()] == [1, 2]


def test_unbox_of_lists_that_start_with_null_gives_valid_whole_lists() -> None:
    # Arrow's reader alone drops the leading nulls and keeps offsets that count them (apache/arrow#51305).
    data = table({"payload": ['{"a": [null, 1], "b": [null, null]}', '{"a": [2], "b": []}', None]})

    out, failures = run(Unbox("payload"), data)

    assert not failures
    assert out is not None
    out.validate(full=True)
    assert out["payload"].type == pa.struct([("a", pa.list_(pa.int64())), ("b", pa.list_(pa.null()))])
    assert out["payload"].to_pylist() == [{"a": [None, 1], "b": [None, None]}, {"a": [2], "b": []}, None]


def _nested(depth: int) -> str:
    return '{"a": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


def test_unbox_dead_letters_text_nested_deeper_than_arrow_can_read() -> None:
    values = ['{"n": 1}', _nested(1001), _nested(1000), '{"s": "' + "[" * 5000 + '"}', '{"n": 5}']
    data = table({"payload": values})

    out, failures = run(Unbox("payload"), data, "unbox_payload")

    assert [(f.row, f.step) for f in failures] == [(1, "unbox_payload")]
    assert "nests deeper than 1000 levels" in failures[0].message
    assert out is not None
    assert out[LINEAGE].to_pylist() == [0, 2, 3, 4]


def test_unbox_of_text_deep_enough_to_crash_arrow_is_a_dead_letter_not_a_segfault() -> None:
    # Arrow's reader overflows its stack between 15,000 and 20,000 levels: run it in a child
    # process so a regression is this test's failure, not the end of the test session.
    code = textwrap.dedent(
        """
        from stream_etl.transforms import Unbox
        from tests.stream_etl.transforms.helpers import run, table
        from tests.stream_etl.transforms.test_nested import _nested
        out, failures = run(Unbox("payload"), table({"payload": ['{"n": 1}', _nested(50_000)]}))
        print(out.num_rows, [f.row for f in failures])
        """
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)

    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.split("\n")[0] == "1 [1]"


def test_unbox_of_an_empty_batch() -> None:
    out, _ = run(Unbox("payload", schema=PAYLOAD_SCHEMA), table({"payload": pa.array([], pa.string())}))
    assert_table(out, table({"payload": pa.array([], pa.struct(list(PAYLOAD_SCHEMA)))}))


ORDERS = table(
    {
        "id": pa.array([10, 11, 12], pa.int64()),
        "items": pa.array(
            [[{"sku": "ä", "qty": 1}, {"sku": "b", "qty": None}], [], [{"sku": "c", "qty": 3}]], pa.list_(ITEM)
        ),
        "note": ["x", None, "z"],
    }
)


def test_relationalize_parent_drops_the_array_and_keeps_the_key() -> None:
    out, _ = run(Relationalize("items", ["id"]), ORDERS)

    assert_table(out, ORDERS.drop_columns(["items"]))


def test_relationalize_children_have_the_join_key_the_index_and_flat_fields() -> None:
    out, _ = run(RelationalizeChildren("items", ["id"], index="item_index", prefix="item_"), ORDERS)

    expected = pa.table(
        {
            "id": pa.array([10, 10, 12], pa.int64()),
            "item_index": pa.array([0, 1, 0], pa.int64()),
            "item_sku": pa.array(["ä", "b", "c"], pa.string()),
            "item_qty": pa.array([1, None, 3], pa.int64()),
            LINEAGE: lineage(0, 0, 2),
        }
    )
    assert_table(out, expected)


def test_relationalize_children_of_scalars_and_of_an_empty_batch() -> None:
    data = table({"id": ["a"], "tags": pa.array([["t1", "t2"]])})
    out, _ = run(RelationalizeChildren("tags", ["id"]), data)
    assert out is not None
    assert out.to_pylist() == [
        {"id": "a", "index": 0, "value": "t1", LINEAGE: 0},
        {"id": "a", "index": 1, "value": "t2", LINEAGE: 0},
    ]
    out, _ = run(RelationalizeChildren("items", ["id"]), ORDERS.slice(0, 0))
    assert out is not None and out.num_rows == 0
    assert out.column_names == ["id", "index", "sku", "qty", LINEAGE]


def test_relationalize_refuses_a_missing_key_or_clashing_names() -> None:
    with pytest.raises(ConfigurationError, match="needs key"):
        Relationalize("items", [])
    clash = table({"sku": ["k"], "items": pa.array([[{"sku": "a", "qty": 1}]], pa.list_(ITEM))})
    with pytest.raises(ConfigurationError, match="prefix"):
        run(RelationalizeChildren("items", ["sku"]), clash)


def test_without_a_schema_a_batch_of_the_wrong_type_is_dead_lettered_not_fatal() -> None:
    data = table({"payload": [1, 2]})
    strict = Unbox("payload")
    with pytest.raises(ConfigurationError, match="not JSON text"):
        run(strict, data)

    lenient = Unbox("payload")
    lenient.strict_columns = False
    out, failures = run(lenient, data, "unbox")

    assert out is None
    assert [(f.row, f.error_class) for f in failures] == [(0, "RowsRejected"), (1, "RowsRejected")]
    assert "'payload' is int64, not JSON text" in failures[0].message


def test_without_a_schema_an_absent_list_column_explodes_to_nothing() -> None:
    step = Explode("tags", keep_empty=True)
    step.strict_columns = False
    out, _ = run(step, table({"id": [1]}))
    assert out is not None
    assert out.to_pylist() == [{"id": 1, LINEAGE: 0, "tags": None}]
