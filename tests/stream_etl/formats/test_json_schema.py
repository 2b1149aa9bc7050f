from __future__ import annotations

import pyarrow as pa
import pytest

from stream_etl.errors import ConfigurationError
from stream_etl.formats import JsonSchemaFormat, json_schema_to_arrow
from stream_etl.records import LINEAGE

ORDER = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "user": {"type": ["string", "null"]},
        "amount": {"type": "number"},
        "ts": {"type": "string", "format": "date-time"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
            "required": ["city"],
        },
    },
    "required": ["id", "amount"],
}


def test_json_schema_converts_to_arrow() -> None:
    assert json_schema_to_arrow(ORDER) == pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("user", pa.string()),
            pa.field("amount", pa.float64(), nullable=False),
            pa.field("ts", pa.timestamp("us", tz="UTC")),
            pa.field("tags", pa.list_(pa.field("item", pa.string()))),
            pa.field("address", pa.struct([pa.field("city", pa.string()), pa.field("zip", pa.string())])),
        ]
    )


def test_valid_records_decode_and_violations_are_dead_lettered_with_a_reason() -> None:
    values = [
        b'{"id": 1, "user": "\xc3\xa5sa", "amount": 2.5, "tags": ["a"], "address": {"city": "Oslo"}}',
        b'{"user": "b", "amount": 1}',
        b'{"id": "seven", "amount": 1}',
        b'{"id": 3, "amount": 1, "address": {"zip": "0150"}}',
        b'{"id": 4, "amount": null}',
        b'{"id": 5, "amount": 7, "extra": true}',
    ]

    decoded = JsonSchemaFormat(ORDER).decode(values)

    assert decoded.table is not None
    assert decoded.table.column("id").to_pylist() == [1, 5]
    assert decoded.table.column("user").to_pylist() == ["åsa", None]
    assert decoded.table.column(LINEAGE).to_pylist() == [0, 5]
    reasons = {f.row: f.message for f in decoded.failures}
    assert reasons == {
        1: "required field(s) ['id'] missing or null",
        2: "JSON parse error: Column(/id) changed from number to string",
        3: "required field 'address.city' is missing or null",
        4: "required field(s) ['amount'] missing or null",
    }


def test_additional_properties_false_dead_letters_unknown_fields() -> None:
    strict = {**ORDER, "additionalProperties": False}

    decoded = JsonSchemaFormat(strict).decode([b'{"id": 1, "amount": 1}', b'{"id": 2, "amount": 1, "extra": 1}'])

    assert decoded.table is not None
    assert decoded.table.column("id").to_pylist() == [1]
    assert [f.row for f in decoded.failures] == [1]


def test_unsupported_schemas_fail_fast() -> None:
    with pytest.raises(ConfigurationError, match="exactly one type"):
        json_schema_to_arrow({"type": "object", "properties": {"a": {"type": ["string", "integer"]}}})
    with pytest.raises(ConfigurationError, match="not in its properties"):
        json_schema_to_arrow({"type": "object", "properties": {}, "required": ["a"]})
    with pytest.raises(ConfigurationError, match="object with properties"):
        json_schema_to_arrow({"type": "string"})


def test_local_references_are_inlined_and_enums_take_their_values_type() -> None:
    schema = {
        "type": "object",
        "$defs": {"Address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        "properties": {
            "home": {"$ref": "#/$defs/Address"},
            "work": {"$ref": "#/$defs/Address"},
            "status": {"enum": ["new", "paid", None]},
            "version": {"const": 2},
        },
    }
    city = pa.struct([pa.field("city", pa.string())])

    assert json_schema_to_arrow(schema) == pa.schema(
        [("home", city), ("work", city), ("status", pa.string()), ("version", pa.int64())]
    )
    decoded = JsonSchemaFormat(schema).decode([b'{"home": {"city": "Oslo"}, "status": "paid"}', b'{"work": {}}'])
    assert decoded.table is not None
    assert decoded.table.column("status").to_pylist() == ["paid"]
    assert [f.message for f in decoded.failures] == ["required field 'work.city' is missing or null"]


def test_bad_references_fail_fast() -> None:
    loop = {"type": "object", "$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}}}
    with pytest.raises(ConfigurationError, match="recursive"):
        json_schema_to_arrow({**loop, "properties": {"n": {"$ref": "#/$defs/N"}}})
    with pytest.raises(ConfigurationError, match="points nowhere"):
        json_schema_to_arrow({"type": "object", "properties": {"n": {"$ref": "#/$defs/Missing"}}})
    with pytest.raises(ConfigurationError, match="only local"):
        json_schema_to_arrow({"type": "object", "properties": {"n": {"$ref": "https://example.com/s.json"}}})
