"""Postgres sink settings: Arrow <-> SQL types, and how rows travel through COPY.

Types are mapped to SQL that Postgres and Redshift both accept, except nested values
(lists, structs, maps) which become ``JSONB`` here (``SUPER`` on Redshift).
"""

from __future__ import annotations

import pyarrow as pa

#: Name of the table holding every job's stored positions in a database.
POSITIONS_TABLE = "stream_etl_positions"


def sql_type(arrow: pa.DataType) -> str:
    """The column type to create for an Arrow type."""
    t = pa.types
    if t.is_boolean(arrow):
        return "BOOLEAN"
    if t.is_int8(arrow) or t.is_int16(arrow) or t.is_uint8(arrow):
        return "SMALLINT"
    if t.is_int32(arrow) or t.is_uint16(arrow):
        return "INTEGER"
    if t.is_int64(arrow) or t.is_uint32(arrow):
        return "BIGINT"
    if t.is_uint64(arrow):
        return "NUMERIC(20, 0)"
    if t.is_float16(arrow) or t.is_float32(arrow):
        return "REAL"
    if t.is_float64(arrow):
        return "DOUBLE PRECISION"
    if t.is_decimal(arrow):
        return f"NUMERIC({arrow.precision}, {arrow.scale})"
    if t.is_date(arrow):
        return "DATE"
    if t.is_timestamp(arrow):
        return "TIMESTAMPTZ" if arrow.tz else "TIMESTAMP"
    if t.is_time(arrow):
        return "TIME"
    if t.is_binary(arrow) or t.is_large_binary(arrow) or t.is_fixed_size_binary(arrow) or t.is_binary_view(arrow):
        return "BYTEA"
    if is_nested(arrow):
        return "JSONB"
    return "TEXT"


def is_nested(arrow: pa.DataType) -> bool:
    t = pa.types
    return bool(
        t.is_list(arrow)
        or t.is_large_list(arrow)
        or t.is_fixed_size_list(arrow)
        or t.is_struct(arrow)
        or t.is_map(arrow)
        or t.is_list_view(arrow)
    )


def is_binary(arrow: pa.DataType) -> bool:
    t = pa.types
    return bool(
        t.is_binary(arrow) or t.is_large_binary(arrow) or t.is_fixed_size_binary(arrow) or t.is_binary_view(arrow)
    )


#: What a column of an existing table accepts, as the Arrow type rows are cast to
#: before COPY (``information_schema.columns.data_type``). Types missing here
#: (numeric, json, ...) take the rows' values as Postgres parses their text.
ARROW_FOR_SQL: dict[str, pa.DataType] = {
    "smallint": pa.int16(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "real": pa.float32(),
    "double precision": pa.float64(),
    "boolean": pa.bool_(),
    "text": pa.string(),
    "character varying": pa.string(),
    "bytea": pa.binary(),
    "date": pa.date32(),
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    "timestamp without time zone": pa.timestamp("us"),
}


#: :data:`ARROW_FOR_SQL`, and the types a crawl meets beyond it: what the catalog records.
_SIMPLE: dict[str, pa.DataType] = {
    **ARROW_FOR_SQL,
    "character": pa.string(),
    "uuid": pa.string(),
    "json": pa.string(),
    "jsonb": pa.string(),
    "time without time zone": pa.time64("us"),
    "interval": pa.duration("us"),
}


def arrow_type(data_type: str, precision: int | None, scale: int | None, udt_name: str) -> pa.DataType:
    """The Arrow type of a Postgres column (``information_schema`` names; unknown types: string)."""
    if data_type == "numeric":
        return pa.decimal128(precision, scale or 0) if precision else pa.string()
    if data_type == "ARRAY":
        return pa.list_(arrow_type(_array_element(udt_name), None, None, ""))
    return _SIMPLE.get(data_type, pa.string())


def _array_element(udt_name: str) -> str:
    names = {"int2": "smallint", "int4": "integer", "int8": "bigint", "float4": "real", "float8": "double precision"}
    element = udt_name.lstrip("_")
    return names.get(element, {"bool": "boolean", "text": "text", "varchar": "text"}.get(element, element))


def arrow_field(
    name: str, data_type: str, is_nullable: str, precision: int | None, scale: int | None, udt_name: str
) -> pa.Field:
    """The Arrow field of a column, from its ``information_schema.columns`` row (these columns, in order)."""
    return pa.field(name, arrow_type(data_type, precision, scale, udt_name), nullable=is_nullable == "YES")
