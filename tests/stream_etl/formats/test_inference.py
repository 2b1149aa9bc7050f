from __future__ import annotations

import pyarrow as pa
import pytest

from stream_etl.errors import ConfigurationError
from stream_etl.formats import infer_schema


def test_json_samples_unify_types_and_conflicts_become_text() -> None:
    samples = [{"id": 1, "n": 1, "tags": ["a"]}, b'{"id": 2, "n": 2.5, "user": "\xc3\xa9"}', '{"id": "x3"}']

    assert infer_schema(samples) == pa.schema(
        [("id", pa.string()), ("n", pa.float64()), ("tags", pa.list_(pa.string())), ("user", pa.string())]
    )


def test_json_samples_that_agree_are_read_in_one_pass() -> None:
    schema = infer_schema([{"a": 1, "b": {"c": True}}, {"a": 2, "b": {"c": False}}])

    assert schema == pa.schema([("a", pa.int64()), ("b", pa.struct([("c", pa.bool_())]))])


def test_csv_samples_with_a_header_or_named_columns() -> None:
    assert infer_schema(["id,name", "1,a", "2,b"], format="csv") == pa.schema(
        [("id", pa.int64()), ("name", pa.string())]
    )
    assert infer_schema(["1,2.5"], format="csv", columns=["a", "b"]) == pa.schema(
        [("a", pa.int64()), ("b", pa.float64())]
    )


def test_bad_samples_fail_fast() -> None:
    with pytest.raises(ConfigurationError, match="at least one sample"):
        infer_schema([])
    with pytest.raises(ConfigurationError, match="container file"):
        infer_schema([b"x"], format="avro")
