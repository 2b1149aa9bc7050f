"""Infer an Arrow schema from sample records, to pin it in a topology.

Inferring types per batch lets a column's type drift with the data (a field that
is an integer in one batch and a float in the next). Infer once from samples,
print the schema, and pass it to the format to get the same types in every batch::

    schema = infer_schema(sample_values, format="json")
    topology.source(KafkaSource("orders"), format=JsonFormat(schema))
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json

from stream_etl.errors import ConfigurationError


def infer_schema(
    samples: Sequence[bytes | str | dict[str, Any]] | bytes,
    *,
    format: Literal["json", "csv", "avro"] = "json",  # noqa: A002 - the word users know
    columns: Sequence[str] | None = None,
) -> pa.Schema:
    """The Arrow schema that fits every sample.

    - ``json``: samples are JSON objects (bytes, text or dicts). Types are unified
      across samples (an integer seen as a float too becomes a double); a field
      seen with incompatible types (a number and a string) becomes a string.
    - ``csv``: samples are CSV rows; the first is the header unless ``columns`` names them.
    - ``avro``: ``samples`` is an Avro object container file (bytes): its embedded
      writer schema is converted.
    """
    if format == "json":
        return _json(samples)  # type: ignore[arg-type]
    if format == "csv":
        return _csv(samples, columns)  # type: ignore[arg-type]
    if format == "avro":
        return _avro(samples)
    msg = f"infer_schema format must be 'json', 'csv' or 'avro', got {format!r}"
    raise ConfigurationError(msg)


def _lines(samples: Sequence[bytes | str | dict[str, Any]]) -> list[bytes]:
    lines = []
    for sample in samples:
        if isinstance(sample, dict):
            lines.append(orjson.dumps(sample))
        elif isinstance(sample, str):
            lines.append(sample.encode())
        else:
            lines.append(bytes(sample))
    return [line.replace(b"\r", b" ").replace(b"\n", b" ") for line in lines if line.strip()]


def _json(samples: Sequence[bytes | str | dict[str, Any]]) -> pa.Schema:
    lines = _lines(samples)
    if not lines:
        msg = "infer_schema needs at least one sample"
        raise ConfigurationError(msg)
    try:
        return pa_json.read_json(pa.py_buffer(b"\n".join(lines))).schema
    except pa.ArrowInvalid:
        pass
    schemas = []
    for line in lines:  # types conflict between samples: unify them one sample at a time
        try:
            schemas.append(pa_json.read_json(pa.py_buffer(line)).schema)
        except pa.ArrowInvalid as exc:
            msg = f"sample {line[:60]!r} is not a JSON object: {exc}"
            raise ConfigurationError(msg) from exc
    return unify_schemas(schemas)


def unify_schemas(schemas: list[pa.Schema]) -> pa.Schema:
    """One schema fitting all of ``schemas``: types promoted where Arrow can, a string where they conflict."""
    merged = schemas[0]
    for schema in schemas[1:]:
        try:
            merged = pa.unify_schemas([merged, schema], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            fields = {f.name: f for f in merged}
            for field in schema:
                seen = fields.get(field.name)
                if seen is None:
                    fields[field.name] = field
                elif not seen.type.equals(field.type):
                    try:
                        pair = [pa.schema([seen]), pa.schema([field])]
                        fields[field.name] = pa.unify_schemas(pair, promote_options="permissive").field(0)
                    except (pa.ArrowInvalid, pa.ArrowTypeError):
                        fields[field.name] = pa.field(field.name, pa.string())
            merged = pa.schema(list(fields.values()))
    return merged


def _csv(samples: Sequence[bytes | str], columns: Sequence[str] | None) -> pa.Schema:
    lines = _lines(samples)
    if not lines:
        msg = "infer_schema needs at least one sample"
        raise ConfigurationError(msg)
    options = pa_csv.ReadOptions(column_names=list(columns)) if columns else pa_csv.ReadOptions()
    try:
        return pa_csv.read_csv(pa.py_buffer(b"\n".join(lines)), read_options=options).schema
    except pa.ArrowInvalid as exc:
        msg = f"the CSV samples cannot be read: {exc}"
        raise ConfigurationError(msg) from exc


def _avro(samples: Any) -> pa.Schema:
    import fastavro

    from stream_etl.formats.avro import avro_to_arrow

    if not isinstance(samples, (bytes, bytearray)):
        msg = "for format='avro', pass the bytes of an Avro object container file"
        raise ConfigurationError(msg)
    try:
        reader = fastavro.reader(io.BytesIO(samples))
    except (ValueError, EOFError) as exc:
        msg = f"not an Avro object container file: {exc}"
        raise ConfigurationError(msg) from exc
    return avro_to_arrow(reader.writer_schema)  # type: ignore[arg-type]
