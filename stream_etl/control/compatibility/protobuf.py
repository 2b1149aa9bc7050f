"""Protobuf compatibility: wire compatibility of the record's message type.

No ``.proto`` parser ships with the protobuf runtime, so a definition is a compiled
FileDescriptorSet (``protoc --include_imports --descriptor_set_out=orders.desc orders.proto``,
what :meth:`~stream_etl.formats.protobuf.ProtobufFormat.from_descriptor_set` reads), given as
its JSON form (``json_format.MessageToJson`` of the set) or as base64 of its bytes. The record's
type is the first message of the last file (protoc writes the named file last).

A reader message reads data written with a writer message when, recursively, for each field
number both have:

- the types are wire-compatible: ``int32 uint32 int64 uint64 bool enum`` are one group,
  ``sint32 sint64`` one, ``fixed32 sfixed32`` one, ``fixed64 sfixed64`` one, ``string bytes``
  one, and an embedded message may be read as ``bytes``; messages compare field by field, so a
  renamed message type (or field) is compatible: names are not on the wire;
- singular and repeated only interchange for ``string``, ``bytes`` and messages;

and a field keeps its number (a name moved to a new number loses its data; a number reused
with another type is caught by the type rule); a reader's ``required`` (proto2) field is
required by the writer too; fields the writer may set together (not in one of its oneofs) do
not share a oneof in the reader, which would keep only one of them. Fields only one side has are skipped (unknown fields), so adding
or removing an optional field is compatible.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from stream_etl.errors import ConfigurationError

try:
    from google.protobuf import descriptor_pb2, descriptor_pool, json_format
    from google.protobuf.descriptor import Descriptor, FieldDescriptor
    from google.protobuf.message import DecodeError
except ImportError as exc:  # pragma: no cover - depends on the install
    msg = "Protobuf schemas need protobuf: pip install 'stream-etl[protobuf]'"
    raise ImportError(msg) from exc

_F = FieldDescriptor
_GROUPS = [
    {_F.TYPE_INT32, _F.TYPE_UINT32, _F.TYPE_INT64, _F.TYPE_UINT64, _F.TYPE_BOOL, _F.TYPE_ENUM},
    {_F.TYPE_SINT32, _F.TYPE_SINT64},
    {_F.TYPE_FIXED32, _F.TYPE_SFIXED32},
    {_F.TYPE_FIXED64, _F.TYPE_SFIXED64},
    {_F.TYPE_STRING, _F.TYPE_BYTES},
]
_LENGTH_DELIMITED = {_F.TYPE_STRING, _F.TYPE_BYTES, _F.TYPE_MESSAGE}
_NAMES = {v: k[5:].lower() for k, v in vars(_F).items() if k.startswith("TYPE_") and isinstance(v, int)}


def descriptor_set(definition: str) -> descriptor_pb2.FileDescriptorSet:
    """The FileDescriptorSet of a definition (JSON form or base64 bytes)."""
    files = descriptor_pb2.FileDescriptorSet()
    try:
        if definition.lstrip().startswith("{"):
            json_format.Parse(definition, files)
        else:
            files.ParseFromString(base64.b64decode(definition, validate=True))
    except (json_format.ParseError, DecodeError, binascii.Error, ValueError) as exc:
        msg = (
            "a Protobuf definition is a FileDescriptorSet (protoc --include_imports --descriptor_set_out=x.desc), "
            f"as JSON or base64: {exc}"
        )
        raise ConfigurationError(msg) from exc
    if not files.file or not files.file[-1].message_type:
        msg = "the FileDescriptorSet's last file declares no message: the record type is its first message"
        raise ConfigurationError(msg)
    return files


def record_type(files: descriptor_pb2.FileDescriptorSet) -> Descriptor:
    pool = descriptor_pool.DescriptorPool()
    try:
        for file in files.file:
            pool.Add(file)
        last = files.file[-1]
        name = f"{last.package}.{last.message_type[0].name}" if last.package else last.message_type[0].name
        return pool.FindMessageTypeByName(name)
    except (TypeError, KeyError) as exc:
        msg = f"the FileDescriptorSet does not build (an import missing? use protoc --include_imports): {exc}"
        raise ConfigurationError(msg) from exc


def normalize(definition: str) -> tuple[str, Any]:
    files = descriptor_set(definition)
    canonical = base64.b64encode(files.SerializeToString(deterministic=True)).decode()
    return canonical, record_type(files)


def reader_problems(reader: Descriptor, writer: Descriptor) -> list[str]:
    return _message(reader, writer, "", set())


def _message(reader: Descriptor, writer: Descriptor, path: str, seen: set[tuple[str, str]]) -> list[str]:
    if (reader.full_name, writer.full_name) in seen:
        return []
    seen = {*seen, (reader.full_name, writer.full_name)}
    found: list[str] = []
    written = writer.fields_by_number
    for field in reader.fields:
        where = f"{path}.{field.name}" if path else field.name
        other = written.get(field.number)
        moved = writer.fields_by_name.get(field.name)
        if moved is not None and moved.number != field.number:
            found.append(f"field {where} moved from number {moved.number} to {field.number}")
        if other is None:
            if field.is_required:
                found.append(f"required field {where} (number {field.number}) is not in the writer's message")
            continue
        if field.is_required and not other.is_required:
            found.append(f"field {where} is required by the reader but optional for the writer")
        found += _field(field, other, where, seen)
    return found + _oneofs(reader, writer, path)


def _oneofs(reader: Descriptor, writer: Descriptor, path: str) -> list[str]:
    """Fields the writer may set together must not share a oneof in the reader (it keeps only the last)."""
    found: list[str] = []
    for oneof in reader.oneofs:
        groups: dict[object, str] = {}
        for field in oneof.fields:
            other = writer.fields_by_number.get(field.number)
            if other is None:
                continue
            group = other.containing_oneof
            key = group.full_name if group is not None and len(group.fields) > 1 else field.number
            groups.setdefault(key, field.name)
        if len(groups) > 1:
            where = f"{path}.{oneof.name}" if path else oneof.name
            found.append(f"oneof {where} holds fields {sorted(groups.values())} that the writer may set together")
    return found


def _field(field: FieldDescriptor, other: FieldDescriptor, where: str, seen: set[tuple[str, str]]) -> list[str]:
    number = f"field {where} (number {field.number})"
    if field.is_repeated != other.is_repeated and not {field.type, other.type} <= _LENGTH_DELIMITED:
        return [f"{number} changed between singular and repeated"]
    if field.type == other.type == _F.TYPE_MESSAGE:
        return _message(field.message_type, other.message_type, where, seen)
    if field.type == other.type or (field.type == _F.TYPE_BYTES and other.type == _F.TYPE_MESSAGE):
        return []
    if any(field.type in g and other.type in g for g in _GROUPS):
        return []
    return [f"{number} is {_NAMES[other.type]} in the writer and {_NAMES[field.type]} here: not wire-compatible"]
