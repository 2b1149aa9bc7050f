from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

from stream_etl.errors import ConfigurationError
from stream_etl.formats import ProtobufFormat
from stream_etl.records import LINEAGE

F = descriptor_pb2.FieldDescriptorProto


def _shop_file() -> descriptor_pb2.FileDescriptorProto:
    """shop.proto, built in code (what protoc would compile)."""
    file = descriptor_pb2.FileDescriptorProto(name="shop.proto", package="shop", syntax="proto3")
    file.dependency.append("google/protobuf/timestamp.proto")
    status = file.enum_type.add(name="Status")
    status.value.add(name="NEW", number=0)
    status.value.add(name="PAID", number=1)
    item = file.message_type.add(name="Item")
    item.field.add(name="sku", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    item.field.add(name="qty", number=2, type=F.TYPE_UINT32, label=F.LABEL_OPTIONAL)
    order = file.message_type.add(name="Order")
    order.oneof_decl.add(name="_coupon")
    order.field.add(name="id", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    order.field.add(name="user", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    order.field.add(
        name="coupon", number=3, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL, proto3_optional=True, oneof_index=0
    )
    order.field.add(name="items", number=4, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED, type_name=".shop.Item")
    order.field.add(
        name="ts", number=5, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL, type_name=".google.protobuf.Timestamp"
    )
    order.field.add(name="status", number=6, type=F.TYPE_ENUM, label=F.LABEL_OPTIONAL, type_name=".shop.Status")
    entry = order.nested_type.add(name="AttrsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    order.field.add(
        name="attrs", number=7, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED, type_name=".shop.Order.AttrsEntry"
    )
    return file


def _order_class() -> Any:
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(_shop_file())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Order"))


def test_the_arrow_schema_follows_the_descriptor() -> None:
    assert ProtobufFormat(_order_class()).schema == pa.schema(
        [
            ("id", pa.int64()),
            ("user", pa.string()),
            ("coupon", pa.string()),
            ("items", pa.list_(pa.struct([("sku", pa.string()), ("qty", pa.uint32())]))),
            ("ts", pa.timestamp("us", tz="UTC")),
            ("status", pa.string()),
            ("attrs", pa.map_(pa.string(), pa.float64())),
        ]
    )


def test_messages_decode_with_protobuf_semantics_and_bad_ones_are_dead_lettered() -> None:
    order = _order_class()
    full = order(id=1, user="åsa", coupon="X", status=1)
    full.items.add(sku="a", qty=2)
    full.attrs["w"] = 0.5
    full.ts.FromSeconds(1_700_000_000)
    values: list[bytes | None] = [full.SerializeToString(), order(id=2).SerializeToString(), b"\xff\xff", None]

    decoded = ProtobufFormat(order).decode(values)

    assert decoded.table is not None
    assert decoded.table.to_pylist() == [
        {
            "id": 1,
            "user": "åsa",
            "coupon": "X",
            "items": [{"sku": "a", "qty": 2}],
            "ts": datetime.fromtimestamp(1_700_000_000, UTC),
            "status": "PAID",
            "attrs": [("w", 0.5)],
            LINEAGE: 0,
        },
        # proto3: scalars without presence read as defaults, fields with presence as null
        {"id": 2, "user": "", "coupon": None, "items": [], "ts": None, "status": "NEW", "attrs": [], LINEAGE: 1},
    ]
    reasons = {f.row: f.message for f in decoded.failures}
    assert "invalid protobuf shop.Order" in reasons[2]
    assert "tombstone" in reasons[3]


def test_from_a_descriptor_set_file_without_generated_code(tmp_path: Path) -> None:
    files = descriptor_pb2.FileDescriptorSet()
    timestamp = files.file.add()
    timestamp.ParseFromString(timestamp_pb2.DESCRIPTOR.serialized_pb)
    files.file.append(_shop_file())
    path = tmp_path / "shop.desc"
    path.write_bytes(files.SerializeToString())

    fmt = ProtobufFormat.from_descriptor_set(path, "shop.Order")
    decoded = fmt.decode([_order_class()(id=7).SerializeToString()])

    assert decoded.table is not None
    assert decoded.table.column("id").to_pylist() == [7]
    with pytest.raises(ConfigurationError, match="not in"):
        ProtobufFormat.from_descriptor_set(path, "shop.Missing")
    with pytest.raises(ConfigurationError, match="cannot read"):
        ProtobufFormat.from_descriptor_set(tmp_path / "missing.desc", "shop.Order")
