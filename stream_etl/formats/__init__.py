"""Record formats beyond JSON, explicit schemas and schema inference.

``JsonFormat`` lives in :mod:`stream_etl.decode` (and is exported by ``stream_etl``);
this package adds :class:`CsvFormat`, :class:`JsonSchemaFormat`, :class:`AvroFormat`,
:class:`ConfluentAvroFormat` (with the resolvers of :mod:`stream_etl.formats.registry`),
:class:`ProtobufFormat` and :func:`infer_schema`. The Avro formats need the ``avro`` extra
(fastavro), Protobuf the ``protobuf`` extra; they are imported lazily, so the rest works
without them. See docs/FORMATS.md.
"""

from __future__ import annotations

from typing import Any

from stream_etl.formats.csv import CsvFormat
from stream_etl.formats.inference import infer_schema
from stream_etl.formats.json_schema import JsonSchemaFormat, json_schema_to_arrow
from stream_etl.formats.registry import (
    DictResolver,
    DirectoryResolver,
    RegistryResolver,
    SchemaResolver,
    StoreResolver,
)

__all__ = [
    "AvroFormat",
    "ConfluentAvroFormat",
    "CsvFormat",
    "DictResolver",
    "DirectoryResolver",
    "JsonSchemaFormat",
    "ProtobufFormat",
    "RegistryResolver",
    "SchemaResolver",
    "StoreResolver",
    "avro_to_arrow",
    "infer_schema",
    "json_schema_to_arrow",
]

_AVRO = ("AvroFormat", "ConfluentAvroFormat", "avro_to_arrow")


def __getattr__(name: str) -> Any:
    if name in _AVRO:
        from stream_etl.formats import avro

        return getattr(avro, name)
    if name == "ProtobufFormat":
        from stream_etl.formats.protobuf import ProtobufFormat

        return ProtobufFormat
    raise AttributeError(name)
