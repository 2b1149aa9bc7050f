from __future__ import annotations

import io
import json
import socket
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import fastavro
import pyarrow as pa
import pytest

from stream_etl.errors import ConfigurationError, SchemaRegistryUnavailable
from stream_etl.formats import (
    AvroFormat,
    ConfluentAvroFormat,
    DictResolver,
    DirectoryResolver,
    RegistryResolver,
    avro_to_arrow,
    infer_schema,
)
from stream_etl.formats.avro import confluent_frame, encode
from stream_etl.records import LINEAGE

V1 = {
    "type": "record",
    "name": "Order",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "user", "type": ["null", "string"], "default": None},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
V2 = {**V1, "fields": [*V1["fields"], {"name": "coupon", "type": ["null", "string"], "default": None}]}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_avro_schema_converts_to_arrow() -> None:
    schema = {
        "type": "record",
        "name": "All",
        "fields": [
            {"name": "i", "type": "int"},
            {"name": "f", "type": "float"},
            {"name": "b", "type": "bytes"},
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
            {"name": "d", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "attrs", "type": {"type": "map", "values": "long"}},
            {"name": "inner", "type": {"type": "record", "name": "In", "fields": [{"name": "x", "type": "E"}]}},
        ],
    }
    assert avro_to_arrow(schema) == pa.schema(
        [
            pa.field("i", pa.int32(), nullable=False),
            pa.field("f", pa.float32(), nullable=False),
            pa.field("b", pa.binary(), nullable=False),
            pa.field("e", pa.string(), nullable=False),
            pa.field("d", pa.decimal128(9, 2), nullable=False),
            pa.field("day", pa.date32(), nullable=False),
            pa.field("tags", pa.list_(pa.string()), nullable=False),
            pa.field("attrs", pa.map_(pa.string(), pa.int64()), nullable=False),
            pa.field("inner", pa.struct([pa.field("x", pa.string(), nullable=False)]), nullable=False),
        ]
    )


def test_plain_avro_decodes_a_batch_and_dead_letters_bad_bodies() -> None:
    good = [encode(V1, {"id": i, "user": f"ü{i}" if i % 2 else None, "ts": T0}) for i in range(3)]
    values: list[bytes | None] = [good[0], b"\x01", None, good[1] + b"zz", good[2]]

    decoded = AvroFormat(V1).decode(values)

    assert decoded.table is not None
    assert decoded.table.to_pylist() == [
        {"id": 0, "user": None, "ts": T0, LINEAGE: 0},
        {"id": 2, "user": None, "ts": T0, LINEAGE: 4},
    ]
    reasons = {f.row: f.message for f in decoded.failures}
    assert sorted(reasons) == [1, 2, 3]
    assert reasons[1].startswith("invalid Avro body")
    assert "tombstone" in reasons[2]
    assert reasons[3] == "Avro body has 2 bytes left after the record"


def test_a_reader_schema_resolves_old_records_to_the_new_shape() -> None:
    decoded = AvroFormat(V1, reader_schema=V2).decode([encode(V1, {"id": 1, "user": "a", "ts": T0})])

    assert decoded.table is not None
    assert decoded.table.drop_columns([LINEAGE]).to_pylist() == [{"id": 1, "user": "a", "ts": T0, "coupon": None}]


def test_confluent_format_resolves_each_schema_id_and_unions_the_columns() -> None:
    fmt = ConfluentAvroFormat(DictResolver({1: V1, 2: V2}))
    values: list[bytes | None] = [
        confluent_frame(1, encode(V1, {"id": 1, "user": "a", "ts": T0})),
        confluent_frame(2, encode(V2, {"id": 2, "user": None, "ts": T0, "coupon": "X"})),
        confluent_frame(9, encode(V1, {"id": 3, "user": None, "ts": T0})),
        b"\x01\x00\x00\x00\x01abc",
        b"\x00\x00",
        None,
        confluent_frame(1, encode(V1, {"id": 4, "user": None, "ts": T0})),
    ]

    decoded = fmt.decode(values)

    assert decoded.table is not None
    assert decoded.table.to_pylist() == [
        {"id": 1, "user": "a", "ts": T0, "coupon": None, LINEAGE: 0},
        {"id": 2, "user": None, "ts": T0, "coupon": "X", LINEAGE: 1},
        {"id": 4, "user": None, "ts": T0, "coupon": None, LINEAGE: 6},
    ]
    reasons = {f.row: f.message for f in decoded.failures}
    assert reasons[2] == "unknown schema id 9 (DictResolver(ids=[1, 2]))"
    assert reasons[3] == "bad magic byte 1; the Confluent wire format starts with 0"
    assert "too short" in reasons[4] and "too short" in reasons[5]


def test_directory_resolver_reads_id_files(tmp_path: Path) -> None:
    (tmp_path / "7.avsc").write_text(json.dumps(V1))
    resolver = DirectoryResolver(tmp_path)

    decoded = ConfluentAvroFormat(resolver).decode([confluent_frame(7, encode(V1, {"id": 5, "ts": T0}))])

    assert decoded.table is not None
    assert decoded.table.column("id").to_pylist() == [5]
    assert resolver.resolve(8) is None
    with pytest.raises(ConfigurationError, match="does not exist"):
        DirectoryResolver(tmp_path / "missing")


def test_decimals_dates_and_nested_records_round_trip() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
            {"name": "items", "type": {"type": "array", "items": {"type": "record", "name": "I", "fields": [
                {"name": "sku", "type": "string"}]}}},
        ],
    }  # fmt: skip
    record = {"price": Decimal("12.34"), "items": [{"sku": "a"}, {"sku": "b"}]}

    decoded = AvroFormat(schema).decode([encode(schema, record)])

    assert decoded.table is not None
    assert decoded.table.drop_columns([LINEAGE]).to_pylist() == [record]


def test_unsupported_unions_fail_fast() -> None:
    schema = {"type": "record", "name": "U", "fields": [{"name": "x", "type": ["int", "string"]}]}
    with pytest.raises(ConfigurationError, match="reader_schema"):
        AvroFormat(schema)


def test_infer_schema_from_an_avro_container_file() -> None:
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(V1), [{"id": 1, "user": None, "ts": T0}])

    assert infer_schema(buffer.getvalue(), format="avro") == avro_to_arrow(V1)


def test_an_unreachable_registry_is_a_transient_error_not_dead_letters() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    fmt = ConfluentAvroFormat(RegistryResolver(f"http://127.0.0.1:{port}", timeout_s=1, attempts=1))

    with pytest.raises(SchemaRegistryUnavailable, match=f"127.0.0.1:{port}"):
        fmt.decode([confluent_frame(1, encode(V1, {"id": 1, "ts": T0}))])
    with pytest.raises(ConfigurationError, match="http"):
        RegistryResolver("127.0.0.1:8081")
