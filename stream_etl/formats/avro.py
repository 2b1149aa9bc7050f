"""Avro records: plain (the schema is given) and Confluent's schema-registry wire format.

fastavro decodes each record's body in C; the batch's records are then turned
into Arrow in one ``Table.from_pylist`` call with the Arrow schema derived from
the Avro schema, so the only per-record Python is the decoder call itself.
A record fastavro refuses, or that leaves bytes unread, is dead-lettered.

Confluent wire format: byte 0 is the magic byte ``0``, bytes 1-4 the schema id
(big-endian), the rest the Avro body. Schemas are looked up by id through a
:class:`SchemaResolver` (:mod:`stream_etl.formats.registry`); a bad magic byte
or an unknown id dead-letters the record. Records written with different
schemas (a producer that added a field) end up in one table: a column missing
from some schemas is null in their rows. With ``reader_schema`` every record is
resolved to that one schema by Avro's own schema-resolution rules.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from stream_etl.dead_letters import Failure
from stream_etl.decode import Decoded, Format
from stream_etl.errors import ConfigurationError
from stream_etl.formats.registry import SchemaResolver
from stream_etl.formats.splitting import decode_failure
from stream_etl.records import LINEAGE

try:
    import fastavro
    from fastavro import parse_schema, schemaless_reader
except ImportError as exc:  # pragma: no cover - depends on the install
    msg = "Avro formats need fastavro: pip install 'stream-etl[avro]'"
    raise ImportError(msg) from exc

AvroSchema = Mapping[str, Any] | str | list[Any]

_PRIMITIVES: dict[str, pa.DataType] = {
    "null": pa.null(),
    "boolean": pa.bool_(),
    "int": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "bytes": pa.binary(),
    "string": pa.string(),
}


def avro_to_arrow(schema: AvroSchema) -> pa.Schema:
    """The Arrow schema of records of Avro record schema ``schema`` (JSON text or parsed)."""
    parsed = _load(schema)
    if not isinstance(parsed, Mapping) or parsed.get("type") != "record":
        msg = f"an Avro record schema is needed, got {str(schema)[:100]}"
        raise ConfigurationError(msg)
    struct = _arrow_type(parsed, {}, str(parsed.get("name", "record")))
    return pa.schema(list(struct))


def _load(schema: AvroSchema) -> Any:
    if isinstance(schema, str):
        try:
            return json.loads(schema)
        except json.JSONDecodeError as exc:
            msg = f"the Avro schema is not valid JSON: {exc}"
            raise ConfigurationError(msg) from exc
    return schema


def _arrow_type(avro: Any, named: dict[str, pa.DataType], path: str) -> pa.DataType:  # noqa: PLR0911, PLR0912
    if isinstance(avro, str):
        if avro in _PRIMITIVES:
            return _PRIMITIVES[avro]
        if avro in named:
            return named[avro]
        msg = f"Avro type {avro!r} at {path} is not defined (recursive types are not supported)"
        raise ConfigurationError(msg)
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        if len(branches) != 1:
            msg = (
                f'Avro union {avro} at {path}: only ["null", T] unions map to Arrow columns; '
                "use a reader_schema that resolves it to one type"
            )
            raise ConfigurationError(msg)
        return _arrow_type(branches[0], named, path)
    kind = avro.get("type")
    logical = avro.get("logicalType")
    if logical == "decimal" and kind in ("bytes", "fixed"):
        return pa.decimal128(int(avro["precision"]), int(avro.get("scale", 0)))
    if logical == "timestamp-millis" and kind == "long":
        return pa.timestamp("ms", tz="UTC")
    if logical == "timestamp-micros" and kind == "long":
        return pa.timestamp("us", tz="UTC")
    if logical == "date" and kind == "int":
        return pa.date32()
    if logical == "time-millis" and kind == "int":
        return pa.time32("ms")
    if logical == "time-micros" and kind == "long":
        return pa.time64("us")
    if logical == "uuid" and kind == "string":
        return pa.string()
    if kind == "record":
        name = str(avro.get("name", path))
        fields = []
        for field in avro.get("fields", []):
            child = _arrow_type(field["type"], named, f"{path}.{field['name']}")
            nullable = field["type"] == "null" or (isinstance(field["type"], list) and "null" in field["type"])
            fields.append(pa.field(field["name"], child, nullable=nullable))
        struct = pa.struct(fields)
        named[name] = struct
        return struct
    if kind == "enum":
        named[str(avro.get("name", path))] = pa.string()
        return pa.string()
    if kind == "fixed":
        fixed = pa.binary(int(avro["size"]))
        named[str(avro.get("name", path))] = fixed
        return fixed
    if kind == "array":
        return pa.list_(_arrow_type(avro["items"], named, f"{path}[]"))
    if kind == "map":
        return pa.map_(pa.string(), _arrow_type(avro["values"], named, f"{path}{{}}"))
    if isinstance(kind, (str, list, dict)):
        return _arrow_type(kind, named, path)
    msg = f"Avro type {avro!r} at {path} is not supported"
    raise ConfigurationError(msg)


class _Decoder:
    """One writer schema (and optional reader schema): bodies -> Arrow rows."""

    def __init__(self, writer: AvroSchema, reader: AvroSchema | None) -> None:
        writer_json, reader_json = _load(writer), _load(reader) if reader is not None else None
        try:
            self.writer = parse_schema(writer_json)
            self.reader = parse_schema(reader_json) if reader_json is not None else None
        except (fastavro.schema.SchemaParseException, KeyError, TypeError, ValueError) as exc:
            msg = f"invalid Avro schema: {exc}"
            raise ConfigurationError(msg) from exc
        self.arrow = avro_to_arrow(reader_json if reader_json is not None else writer_json)

    def decode(self, rows: list[int], bodies: list[bytes], failures: list[Failure]) -> pa.Table | None:
        records: list[Any] = []
        kept: list[int] = []
        for row, body in zip(rows, bodies, strict=True):  # fastavro decodes one body per call
            stream = io.BytesIO(body)
            try:
                record = schemaless_reader(stream, self.writer, self.reader)
            except Exception as exc:  # noqa: BLE001 - any decoder error is this record's
                failures.append(decode_failure(row, f"invalid Avro body: {type(exc).__name__}: {exc}"))
                continue
            if stream.tell() != len(body):
                failures.append(
                    decode_failure(row, f"Avro body has {len(body) - stream.tell()} bytes left after the record")
                )
                continue
            records.append(record)
            kept.append(row)
        if not records:
            return None
        try:
            table = pa.Table.from_pylist(records, schema=self.arrow)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            return self._one_by_one(kept, records, failures, exc)
        return table.append_column(LINEAGE, pa.array(kept, pa.int32()))

    def _one_by_one(
        self, rows: list[int], records: list[Any], failures: list[Failure], first: Exception
    ) -> pa.Table | None:
        tables = []
        for row, record in zip(rows, records, strict=True):  # only after Arrow refused the batch
            try:
                table = pa.Table.from_pylist([record], schema=self.arrow)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
                failures.append(decode_failure(row, f"Avro record does not fit Arrow: {exc}"))
                continue
            tables.append(table.append_column(LINEAGE, pa.array([row], pa.int32())))
        return pa.concat_tables(tables) if tables else None


class AvroFormat(Format):
    """Avro bodies without framing, all written with ``schema`` (Avro JSON text or dict).

    ``reader_schema`` resolves them to another schema (Avro's evolution rules:
    defaults for added fields, promotions such as int -> long).
    """

    def __init__(self, schema: AvroSchema, *, reader_schema: AvroSchema | None = None) -> None:
        self._decoder = _Decoder(schema, reader_schema)
        self.schema = self._decoder.arrow

    @property
    def declares_schema(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"AvroFormat({self.schema!r})"

    def decode(self, values: Sequence[bytes | None]) -> Decoded:
        failures: list[Failure] = []
        rows: list[int] = []
        bodies: list[bytes] = []
        for row, value in enumerate(values):
            if value is None:
                failures.append(decode_failure(row, "value is null (a tombstone); expected an Avro record"))
            else:
                rows.append(row)
                bodies.append(value)
        table = self._decoder.decode(rows, bodies, failures) if rows else None
        failures.sort(key=lambda f: f.row)
        return Decoded(table, failures)


class ConfluentAvroFormat(Format):
    """Avro in Confluent's wire format: ``0``, a 4-byte schema id, the body.

    ``resolver`` finds a writer schema by id (:class:`~stream_etl.formats.registry.DictResolver`,
    :class:`~stream_etl.formats.registry.DirectoryResolver`,
    :class:`~stream_etl.formats.registry.RegistryResolver`). Without ``reader_schema``
    the columns are the union of the writer schemas' fields seen in a batch.
    """

    def __init__(self, resolver: SchemaResolver, *, reader_schema: AvroSchema | None = None) -> None:
        if not isinstance(resolver, SchemaResolver):
            msg = f"ConfluentAvroFormat needs a SchemaResolver, got {type(resolver).__name__}"
            raise ConfigurationError(msg)
        self.resolver = resolver
        self.reader_schema = reader_schema
        self.schema = avro_to_arrow(reader_schema) if reader_schema is not None else None
        self._decoders: dict[int, _Decoder] = {}

    @property
    def declares_schema(self) -> bool:
        return self.reader_schema is not None

    def __repr__(self) -> str:
        return f"ConfluentAvroFormat({self.resolver!r}, reader_schema={self.reader_schema is not None})"

    def _decoder(self, schema_id: int) -> _Decoder | None:
        """The decoder for ``schema_id``; ids are immutable, so found ones are kept. An unknown id
        is asked again in the next batch that holds it (it may have been registered since)."""
        found = self._decoders.get(schema_id)
        if found is None:
            writer = self.resolver.resolve(schema_id)
            if writer is None:
                return None
            found = self._decoders[schema_id] = _Decoder(writer, self.reader_schema)
        return found

    def decode(self, values: Sequence[bytes | None]) -> Decoded:
        failures: list[Failure] = []
        groups: dict[int, tuple[list[int], list[bytes]]] = {}
        for row, value in enumerate(values):  # framing only: a slice per record
            if value is None or len(value) < 5:
                failures.append(decode_failure(row, "value is too short for the Confluent wire format (5+ bytes)"))
            elif value[0] != 0:
                failures.append(
                    decode_failure(row, f"bad magic byte {value[0]}; the Confluent wire format starts with 0")
                )
            else:
                rows, bodies = groups.setdefault(int.from_bytes(value[1:5], "big"), ([], []))
                rows.append(row)
                bodies.append(value[5:])
        tables = []
        for schema_id, (rows, bodies) in groups.items():
            try:
                decoder = self._decoder(schema_id)
            except ConfigurationError as exc:
                failures.extend(decode_failure(r, f"schema id {schema_id}: {exc}") for r in rows)
                continue
            if decoder is None:
                failures.extend(decode_failure(r, f"unknown schema id {schema_id} ({self.resolver!r})") for r in rows)
                continue
            table = decoder.decode(rows, bodies, failures)
            if table is not None:
                tables.append(table)
        failures.sort(key=lambda f: f.row)
        if not tables:
            return Decoded(None, failures)
        if len(tables) == 1:
            return Decoded(tables[0], failures)
        table = pa.concat_tables(tables, promote_options="permissive").sort_by(LINEAGE)
        return Decoded(table, failures)


def confluent_frame(schema_id: int, body: bytes) -> bytes:
    """``body`` in the Confluent wire format, as a producer would send it."""
    return b"\x00" + schema_id.to_bytes(4, "big") + body


def encode(schema: AvroSchema, record: Mapping[str, Any]) -> bytes:
    """One Avro body (no framing): for producers, tests and examples."""
    stream = io.BytesIO()
    fastavro.schemaless_writer(stream, parse_schema(_load(schema)), dict(record))
    return stream.getvalue()
