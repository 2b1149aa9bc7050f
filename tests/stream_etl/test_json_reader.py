"""Arrow's JSON reader, checked: lists that start with null (apache/arrow#51305) come back valid."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.json as pa_json
import pytest

from stream_etl.json_reader import MAX_DEPTH, read_json, too_deep

# Each line has the same keys, so the table's rows equal json.loads of the lines.
LEADING_NULLS = {
    "a leading null before numbers": [{"a": [None, 1]}],
    "nulls only (list<null>)": [{"a": [None, None]}],
    "list<null> over several rows": [{"a": [None, None, None]}, {"a": [None]}, {"a": []}, {"a": None}],
    "an empty list, then nulls": [{"a": []}, {"a": [None, None]}],
    "leading nulls, then a longer list": [{"a": [None, 1]}, {"a": [2, 3, 4, 5]}],
    "in a struct": [{"a": {"b": None}}, {"a": {"b": [None, 1]}}],
    "in a list of lists": [{"a": [[None, 1], [2]]}],
    "list<null> in a list": [{"a": [None, [None, None], []]}, {"a": None}],
    "before a struct holding one": [{"a": [None, {"x": [None, "q"]}]}],
    "the property test's minimal input": [{"": [None, None]}],
}


@pytest.mark.parametrize("rows", LEADING_NULLS.values(), ids=LEADING_NULLS.keys())
def test_lists_that_start_with_null_come_back_valid_and_whole(rows: list[dict[str, object]]) -> None:
    text = "\n".join(json.dumps(row) for row in rows).encode()

    table = read_json(text)

    table.validate(full=True)
    assert table.to_pylist() == rows


def test_an_explicit_schema_with_a_null_list_comes_back_valid() -> None:
    schema = pa.schema([("a", pa.list_(pa.null())), ("b", pa.list_(pa.int64()))])
    options = pa_json.ParseOptions(explicit_schema=schema)

    table = read_json(b'{"a": [null, null], "b": [null, 2]}\n{"a": [null], "b": []}', parse_options=options)

    table.validate(full=True)
    assert table.schema == schema
    assert table.to_pylist() == [{"a": [None, None], "b": [None, 2]}, {"a": [None], "b": []}]


def test_a_sliced_buffer_and_a_valid_table_are_read_as_they_are() -> None:
    buffer = pa.py_buffer(b'xx{"a": [1, null]}\n{"a": null}')[2:]

    table = read_json(buffer)

    assert table.to_pylist() == [{"a": [1, None]}, {"a": None}]


def test_too_deep_counts_brackets_outside_strings_only() -> None:
    def nested(depth: int) -> bytes:
        return b'{"a": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"

    in_a_string = b'{"s": "' + b"[" * 5000 + b'"}'
    assert not too_deep([nested(MAX_DEPTH), in_a_string, b"{}"], MAX_DEPTH)
    assert too_deep([b"{}", nested(MAX_DEPTH + 1)], MAX_DEPTH)
