"""Arrow schemas as JSON (stored in the catalog, shown by the API) and diffs between them.

A field is ``{"name", "type", "nullable"}``; a primitive type is its Arrow name
(``"int64"``, ``"string"``, ``"timestamp[us, tz=UTC]"``), a nested type an object::

    {"name": "tags", "type": {"list": {"name": "item", "type": "string", "nullable": true}}, "nullable": true}
    {"name": "addr", "type": {"struct": [{"name": "city", ...}]}, "nullable": true}
"""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa
from pydantic import BaseModel

from stream_etl.errors import ConfigurationError

_TIMESTAMP = re.compile(r"^timestamp\[(s|ms|us|ns)(?:, tz=(.+))?\]$")
_DECIMAL = re.compile(r"^decimal(128|256)\((\d+), (-?\d+)\)$")
_FIXED = re.compile(r"^fixed_size_binary\[(\d+)\]$")
_DURATION = re.compile(r"^duration\[(s|ms|us|ns)\]$")


def type_to_json(type_: pa.DataType) -> Any:
    if pa.types.is_struct(type_):
        return {"struct": [field_to_json(type_.field(i)) for i in range(type_.num_fields)]}
    if pa.types.is_large_list(type_):
        return {"large_list": field_to_json(type_.value_field)}
    if pa.types.is_list(type_):
        return {"list": field_to_json(type_.value_field)}
    if pa.types.is_map(type_):
        return {"map": [field_to_json(type_.key_field), field_to_json(type_.item_field)]}
    if pa.types.is_dictionary(type_):
        return {"dictionary": [type_to_json(type_.index_type), type_to_json(type_.value_type)]}
    return str(type_)


def type_from_json(value: Any) -> pa.DataType:
    if isinstance(value, dict):
        ((kind, body),) = value.items()
        if kind == "struct":
            return pa.struct([field_from_json(f) for f in body])
        if kind == "list":
            return pa.list_(field_from_json(body))
        if kind == "large_list":
            return pa.large_list(field_from_json(body))
        if kind == "map":
            return pa.map_(field_from_json(body[0]), field_from_json(body[1]))
        if kind == "dictionary":
            return pa.dictionary(type_from_json(body[0]), type_from_json(body[1]))
    elif isinstance(value, str):
        if match := _TIMESTAMP.match(value):
            return pa.timestamp(match[1], tz=match[2])
        if match := _DECIMAL.match(value):
            make = pa.decimal128 if match[1] == "128" else pa.decimal256
            return make(int(match[2]), int(match[3]))
        if match := _FIXED.match(value):
            return pa.binary(int(match[1]))
        if match := _DURATION.match(value):
            return pa.duration(match[1])
        try:
            return pa.type_for_alias(value)
        except ValueError:
            pass
    msg = f"unknown Arrow type in a stored schema: {value!r}"
    raise ConfigurationError(msg)


def field_to_json(field: pa.Field) -> dict[str, Any]:
    return {"name": field.name, "type": type_to_json(field.type), "nullable": field.nullable}


def field_from_json(value: dict[str, Any]) -> pa.Field:
    return pa.field(value["name"], type_from_json(value["type"]), nullable=bool(value.get("nullable", True)))


def schema_to_json(schema: pa.Schema) -> list[dict[str, Any]]:
    return [field_to_json(f) for f in schema]


def schema_from_json(value: list[dict[str, Any]]) -> pa.Schema:
    return pa.schema([field_from_json(f) for f in value])


def dumps(schema: pa.Schema) -> str:
    return json.dumps(schema_to_json(schema), separators=(",", ":"))


def loads(text: str) -> pa.Schema:
    return schema_from_json(json.loads(text))


class ColumnChange(BaseModel):
    column: str
    old: str
    new: str


class SchemaDiff(BaseModel):
    """Columns by dotted path (``address.city`` inside a struct)."""

    added: list[str] = []
    removed: list[str] = []
    changed: list[ColumnChange] = []

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def _flatten(fields: list[pa.Field], prefix: str = "") -> dict[str, pa.Field]:
    found: dict[str, pa.Field] = {}
    for field in fields:
        path = prefix + field.name
        found[path] = field
        if pa.types.is_struct(field.type):
            found.update(_flatten(list(field.type), path + "."))
    return found


def _describe(field: pa.Field) -> str:
    kind = "struct" if pa.types.is_struct(field.type) else str(field.type)
    return kind + ("" if field.nullable else " not null")


def diff(old: pa.Schema, new: pa.Schema) -> SchemaDiff:
    """What changed from ``old`` to ``new``: added, removed and retyped columns (struct
    members are compared one by one, so a struct that gained a member is one ``added``)."""
    before, after = _flatten(list(old)), _flatten(list(new))
    changed = [
        ColumnChange(column=path, old=_describe(before[path]), new=_describe(after[path]))
        for path in after
        if path in before and _describe(before[path]) != _describe(after[path])
    ]
    return SchemaDiff(
        added=[p for p in after if p not in before],
        removed=[p for p in before if p not in after],
        changed=changed,
    )
