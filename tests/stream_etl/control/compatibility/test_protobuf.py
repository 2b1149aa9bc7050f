"""Protobuf wire compatibility: each rule with a compatible and an incompatible case.

Definitions are FileDescriptorSets built here, as protoc would compile them."""

from __future__ import annotations

import base64

import pytest
from google.protobuf import descriptor_pb2, json_format

from stream_etl.control import compatibility
from stream_etl.errors import ConfigurationError

F = descriptor_pb2.FieldDescriptorProto
Field = tuple[str, int, int] | tuple[str, int, int, int] | tuple[str, int, int, int, str]


def definition(*fields: Field, message: str = "Order", syntax: str = "proto3", as_json: bool = True) -> str:
    """A one-file set: message ``message`` with ``(name, number, type[, label[, type_name]])`` fields and a
    nested message ``Item`` (fields sku: string = 1, qty: int32 = 2) for message-typed fields."""
    file = descriptor_pb2.FileDescriptorProto(name="shop.proto", package="shop", syntax=syntax)
    item = file.message_type.add(name="Item")
    item.field.add(name="sku", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    item.field.add(name="qty", number=2, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    root = descriptor_pb2.DescriptorProto(name=message)
    for name, number, type_, *rest in fields:
        label = rest[0] if rest else F.LABEL_OPTIONAL
        added = root.field.add(name=name, number=number, type=type_, label=label)
        if len(rest) > 1:
            added.type_name = str(rest[1])
    file.message_type.insert(0, root)  # the record type is the first message
    files = descriptor_pb2.FileDescriptorSet(file=[file])
    return json_format.MessageToJson(files) if as_json else base64.b64encode(files.SerializeToString()).decode()


def problems(reader: str, writer: str) -> list[str]:
    _fp, new = compatibility.parse("PROTOBUF", reader)
    _fp, old = compatibility.parse("PROTOBUF", writer)
    return [p.split(": ", 1)[1] for p in compatibility.problems("PROTOBUF", "BACKWARD", new, old)]


ID = ("id", 1, F.TYPE_INT64)


@pytest.mark.parametrize(
    ("writer", "reader", "ok"),
    [
        (F.TYPE_INT32, F.TYPE_INT64, True),
        (F.TYPE_UINT64, F.TYPE_BOOL, True),
        (F.TYPE_ENUM, F.TYPE_INT32, True),
        (F.TYPE_SINT32, F.TYPE_SINT64, True),
        (F.TYPE_FIXED32, F.TYPE_SFIXED32, True),
        (F.TYPE_STRING, F.TYPE_BYTES, True),
        (F.TYPE_INT32, F.TYPE_SINT32, False),
        (F.TYPE_INT64, F.TYPE_STRING, False),
        (F.TYPE_FIXED32, F.TYPE_FIXED64, False),
        (F.TYPE_FLOAT, F.TYPE_DOUBLE, False),
    ],
)
def test_field_types_must_be_wire_compatible(writer: int, reader: int, ok: bool) -> None:
    found = problems(_with_enum(definition(ID, _typed(reader))), _with_enum(definition(ID, _typed(writer))))
    assert (found == []) is ok, found
    if not ok:
        assert "not wire-compatible" in found[0]


def _typed(type_: int) -> Field:
    return ("n", 2, type_, F.LABEL_OPTIONAL, ".shop.Status") if type_ == F.TYPE_ENUM else ("n", 2, type_)


def _with_enum(text: str) -> str:
    files = json_format.Parse(text, descriptor_pb2.FileDescriptorSet())
    enum = files.file[0].enum_type.add(name="Status")
    enum.value.add(name="NEW", number=0)
    return json_format.MessageToJson(files)


def test_adding_and_removing_fields_is_compatible_but_required_ones_are_not() -> None:
    v1 = definition(ID)
    v2 = definition(ID, ("note", 2, F.TYPE_STRING))
    assert problems(v2, v1) == [] and problems(v1, v2) == []
    required = definition(ID, ("note", 2, F.TYPE_STRING, F.LABEL_REQUIRED), syntax="proto2")
    assert problems(required, definition(ID, syntax="proto2")) == [
        "required field note (number 2) is not in the writer's message"
    ]
    optional = definition(ID, ("note", 2, F.TYPE_STRING), syntax="proto2")
    assert problems(required, optional) == ["field note is required by the reader but optional for the writer"]
    assert problems(optional, required) == []


def test_a_field_keeps_its_number_and_a_reused_number_keeps_its_type() -> None:
    v1 = definition(ID, ("note", 2, F.TYPE_STRING))
    assert problems(definition(ID, ("comment", 2, F.TYPE_STRING)), v1) == []  # renamed: names are not on the wire
    assert problems(definition(ID, ("note", 3, F.TYPE_STRING)), v1) == ["field note moved from number 2 to 3"]
    reused = problems(definition(ID, ("qty", 2, F.TYPE_INT32)), v1)  # note removed, its number reused
    assert reused == ["field qty (number 2) is string in the writer and int32 here: not wire-compatible"]


def test_labels_interchange_only_for_length_delimited_types() -> None:
    one, many = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    assert (
        problems(definition(ID, ("tag", 2, F.TYPE_STRING, many)), definition(ID, ("tag", 2, F.TYPE_STRING, one))) == []
    )
    found = problems(definition(ID, ("n", 2, F.TYPE_INT32, many)), definition(ID, ("n", 2, F.TYPE_INT32, one)))
    assert found == ["field n (number 2) changed between singular and repeated"]


def test_messages_compare_field_by_field_and_may_be_renamed() -> None:
    items = ("items", 2, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".shop.Item")
    assert problems(definition(ID, items, message="Purchase"), definition(ID, items)) == []
    assert problems(definition(ID, ("items", 2, F.TYPE_BYTES, F.LABEL_REPEATED)), definition(ID, items)) == []
    text = definition(ID, items)
    files = json_format.Parse(text, descriptor_pb2.FileDescriptorSet())
    files.file[0].message_type[1].field[1].type = F.TYPE_STRING  # Item.qty: int32 -> string
    changed = json_format.MessageToJson(files)
    assert problems(changed, text) == [
        "field items.qty (number 2) is int32 in the writer and string here: not wire-compatible"
    ]


def test_definitions_as_json_or_base64_and_invalid_ones() -> None:
    as_json, as_b64 = definition(ID), definition(ID, as_json=False)
    assert compatibility.parse("PROTOBUF", as_json)[0] == compatibility.parse("PROTOBUF", as_b64)[0]
    with pytest.raises(ConfigurationError, match="FileDescriptorSet"):
        compatibility.parse("PROTOBUF", "syntax = 'proto3';")
    with pytest.raises(ConfigurationError, match="declares no message"):
        compatibility.parse("PROTOBUF", json_format.MessageToJson(descriptor_pb2.FileDescriptorSet()))
    missing_import = json_format.Parse(as_json, descriptor_pb2.FileDescriptorSet())
    missing_import.file[0].dependency.append("google/protobuf/timestamp.proto")
    with pytest.raises(ConfigurationError, match="does not build"):
        compatibility.parse("PROTOBUF", json_format.MessageToJson(missing_import))


def test_fields_the_writer_sets_together_may_not_move_into_one_oneof() -> None:
    def with_oneof(*members: str) -> str:
        files = json_format.Parse(
            definition(ID, ("card", 2, F.TYPE_STRING), ("iban", 3, F.TYPE_STRING)), descriptor_pb2.FileDescriptorSet()
        )
        root = files.file[0].message_type[0]
        if members:
            root.oneof_decl.add(name="payment")
        for field in root.field:
            if field.name in members:
                field.oneof_index = 0
        return json_format.MessageToJson(files)

    separate, together = with_oneof(), with_oneof("card", "iban")
    assert problems(separate, together) == []  # out of a oneof: both may now be set
    assert problems(with_oneof("card"), separate) == []  # a one-field oneof loses nothing
    assert problems(together, together) == []
    assert problems(together, separate) == [
        "oneof payment holds fields ['card', 'iban'] that the writer may set together"
    ]
