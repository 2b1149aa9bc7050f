"""Protocol Buffers records: one serialized message per record (no framing).

The message type comes as a generated class, or by name from a descriptor set
(``protoc --descriptor_set_out=orders.desc --include_imports orders.proto``), so
no generated code is needed. Each record is parsed by protobuf's C parser (upb);
the batch's messages are then turned into Arrow in one ``Table.from_pylist`` call
with the Arrow schema derived from the message descriptor. A record the parser
refuses is dead-lettered.

Protobuf field semantics are kept: a proto3 scalar without presence that was not
sent reads as its default (0, "", false), a field with presence (``optional``, a
message) as null; fields unknown to the reader's descriptor are ignored, as
protobuf itself does, so producers may add fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from stream_etl.dead_letters import Failure
from stream_etl.decode import Decoded, Format
from stream_etl.errors import ConfigurationError
from stream_etl.formats.splitting import decode_failure
from stream_etl.records import LINEAGE

try:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from google.protobuf.descriptor import Descriptor, FieldDescriptor
    from google.protobuf.message import DecodeError, Message
except ImportError as exc:  # pragma: no cover - depends on the install
    msg = "ProtobufFormat needs protobuf: pip install 'stream-etl[protobuf]'"
    raise ImportError(msg) from exc

_SCALARS: dict[int, pa.DataType] = {
    FieldDescriptor.TYPE_DOUBLE: pa.float64(),
    FieldDescriptor.TYPE_FLOAT: pa.float32(),
    FieldDescriptor.TYPE_INT64: pa.int64(),
    FieldDescriptor.TYPE_SINT64: pa.int64(),
    FieldDescriptor.TYPE_SFIXED64: pa.int64(),
    FieldDescriptor.TYPE_UINT64: pa.uint64(),
    FieldDescriptor.TYPE_FIXED64: pa.uint64(),
    FieldDescriptor.TYPE_INT32: pa.int32(),
    FieldDescriptor.TYPE_SINT32: pa.int32(),
    FieldDescriptor.TYPE_SFIXED32: pa.int32(),
    FieldDescriptor.TYPE_UINT32: pa.uint32(),
    FieldDescriptor.TYPE_FIXED32: pa.uint32(),
    FieldDescriptor.TYPE_BOOL: pa.bool_(),
    FieldDescriptor.TYPE_STRING: pa.string(),
    FieldDescriptor.TYPE_BYTES: pa.binary(),
    FieldDescriptor.TYPE_ENUM: pa.string(),
}
_TIMESTAMP = "google.protobuf.Timestamp"


def protobuf_to_arrow(descriptor: Descriptor) -> pa.Schema:
    """The Arrow schema of messages of type ``descriptor``."""
    return pa.schema(list(_struct(descriptor, ())))


def _struct(descriptor: Descriptor, seen: tuple[str, ...]) -> pa.StructType:
    if descriptor.full_name in seen:
        msg = f"message {descriptor.full_name} is recursive; Arrow columns need a finite shape"
        raise ConfigurationError(msg)
    return pa.struct([pa.field(f.name, _type(f, (*seen, descriptor.full_name))) for f in descriptor.fields])


def _is_repeated(field: FieldDescriptor) -> bool:
    repeated = getattr(field, "is_repeated", None)  # protobuf 6+; older versions have only ``label``
    if repeated is None:
        return bool(field.label == FieldDescriptor.LABEL_REPEATED)
    return bool(repeated)


def _is_map(field: FieldDescriptor) -> bool:
    entry = field.message_type
    return _is_repeated(field) and entry is not None and entry.GetOptions().map_entry


def _type(field: FieldDescriptor, seen: tuple[str, ...]) -> pa.DataType:
    if _is_map(field):
        key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
        return pa.map_(_single(key, seen), _single(value, seen))
    single = _single(field, seen)
    return pa.list_(single) if _is_repeated(field) else single


def _single(field: FieldDescriptor, seen: tuple[str, ...]) -> pa.DataType:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.full_name == _TIMESTAMP:
            return pa.timestamp("us", tz="UTC")
        return _struct(field.message_type, seen)
    if field.type in _SCALARS:
        return _SCALARS[field.type]
    msg = f"protobuf field {field.full_name} has an unsupported type ({field.type})"
    raise ConfigurationError(msg)


def _to_python(message: Message, descriptor: Descriptor) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in descriptor.fields:
        value = getattr(message, field.name)
        if _is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            out[field.name] = [(k, _value(v, value_field)) for k, v in value.items()]
        elif _is_repeated(field):
            out[field.name] = [_value(v, field) for v in value]
        elif field.has_presence and not message.HasField(field.name):
            out[field.name] = None
        else:
            out[field.name] = _value(value, field)
    return out


def _value(value: Any, field: FieldDescriptor) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.full_name == _TIMESTAMP:
            return datetime.fromtimestamp(value.seconds, UTC).replace(microsecond=value.nanos // 1000)
        return _to_python(value, field.message_type)
    if field.type == FieldDescriptor.TYPE_ENUM:
        found = field.enum_type.values_by_number.get(value)
        return found.name if found is not None else str(value)
    return value


class ProtobufFormat(Format):
    """Serialized protobuf messages of one type: ``ProtobufFormat(orders_pb2.Order)``, or
    ``ProtobufFormat.from_descriptor_set("orders.desc", "shop.Order")`` without generated code."""

    def __init__(self, message_class: type[Message]) -> None:
        descriptor = getattr(message_class, "DESCRIPTOR", None)
        if not isinstance(descriptor, Descriptor):
            msg = f"ProtobufFormat needs a generated message class, got {message_class!r}"
            raise ConfigurationError(msg)
        self.message_class = message_class
        self.descriptor = descriptor
        self.schema = protobuf_to_arrow(descriptor)

    @classmethod
    def from_descriptor_set(cls, path: str | Path, message: str) -> ProtobufFormat:
        """The message type named ``message`` (``package.Name``) in a FileDescriptorSet file."""
        files = descriptor_pb2.FileDescriptorSet()
        try:
            files.ParseFromString(Path(path).read_bytes())
        except (OSError, DecodeError) as exc:
            msg = f"cannot read the descriptor set {path}: {exc}"
            raise ConfigurationError(msg) from exc
        pool = descriptor_pool.DescriptorPool()
        for file in files.file:
            pool.Add(file)
        try:
            descriptor = pool.FindMessageTypeByName(message)
        except KeyError as exc:
            msg = f"message {message!r} is not in {path}; it holds {[f.name for f in files.file]}"
            raise ConfigurationError(msg) from exc
        return cls(message_factory.GetMessageClass(descriptor))

    @property
    def declares_schema(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"ProtobufFormat({self.descriptor.full_name})"

    def decode(self, values: Sequence[bytes | None]) -> Decoded:
        failures: list[Failure] = []
        records: list[dict[str, Any]] = []
        rows: list[int] = []
        parse = self.message_class.FromString
        for row, value in enumerate(values):  # protobuf parses one message per call
            if value is None:
                failures.append(decode_failure(row, "value is null (a tombstone); expected a protobuf message"))
                continue
            try:
                message = parse(value)
            except (DecodeError, RuntimeError, ValueError) as exc:
                failures.append(decode_failure(row, f"invalid protobuf {self.descriptor.full_name}: {exc}"))
                continue
            records.append(_to_python(message, self.descriptor))
            rows.append(row)
        if not records:
            return Decoded(None, failures)
        table = pa.Table.from_pylist(records, schema=self.schema)
        return Decoded(table.append_column(LINEAGE, pa.array(rows, pa.int32())), failures)
