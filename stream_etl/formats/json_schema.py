"""JSON records checked against a JSON Schema, through the Arrow JSON reader.

:func:`json_schema_to_arrow` turns a JSON Schema into an Arrow schema: ``type``
gives the Arrow type, ``required`` makes a field non-nullable, ``properties``
give struct fields, ``items`` list elements. :class:`JsonSchemaFormat` then
reads batches with that schema, so the type and ``required`` checks run inside
Arrow's C++ reader: a record with a missing required field, a null where one is
required, or a value of another type is refused there and dead-lettered by the
bisecting slow path with Arrow's message. ``additionalProperties: false``
dead-letters records with fields the schema does not name.

Local references (``"$ref": "#/$defs/Address"``) are inlined; ``enum`` / ``const``
without a ``type`` take the type of their values. Keywords that constrain values
rather than types (``enum`` values, ``minimum``, ``pattern``, ``format`` other than
``date-time``...) are not checked: use a ``filter`` step for those.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from stream_etl.dead_letters import Failure
from stream_etl.decode import DECODE_STEP, Decoded, JsonFormat
from stream_etl.errors import ConfigurationError
from stream_etl.records import LINEAGE

_SCALARS: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
}


def json_schema_to_arrow(schema: Mapping[str, Any] | str | Path) -> pa.Schema:
    """The Arrow schema of objects valid under JSON Schema ``schema`` (a dict, JSON text or a file)."""
    loaded = _inline(_load(schema))
    if _types(loaded, "$")[0] != "object" or "properties" not in loaded:
        msg = "the JSON Schema must describe an object with properties at the top level"
        raise ConfigurationError(msg)
    return pa.schema(list(_struct(loaded, "$")))


def _load(schema: Mapping[str, Any] | str | Path) -> Mapping[str, Any]:
    if isinstance(schema, Path):
        schema = schema.read_text()
    if isinstance(schema, str):
        try:
            loaded = json.loads(schema)
        except json.JSONDecodeError as exc:
            msg = f"the JSON Schema is not valid JSON: {exc}"
            raise ConfigurationError(msg) from exc
        if not isinstance(loaded, dict):
            msg = "the JSON Schema must be a JSON object"
            raise ConfigurationError(msg)
        return loaded
    return schema


def _inline(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """``schema`` with its local references (``{"$ref": "#/$defs/Address"}``) replaced by their targets."""

    def resolve(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [resolve(item, seen) for item in node]
        if not isinstance(node, Mapping):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith("#/"):
                msg = f"JSON Schema reference {ref!r}: only local references (#/...) are supported"
                raise ConfigurationError(msg)
            if ref in seen:
                msg = f"JSON Schema reference {ref!r} is recursive; Arrow columns need a finite shape"
                raise ConfigurationError(msg)
            target: Any = schema
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, Mapping) or part not in target:
                    msg = f"JSON Schema reference {ref!r} points nowhere"
                    raise ConfigurationError(msg)
                target = target[part]
            return resolve(target, (*seen, ref))
        return {key: resolve(value, seen) for key, value in node.items()}

    definitions = ("$defs", "definitions")  # only what the properties use is inlined
    return {key: value if key in definitions else resolve(value, ()) for key, value in schema.items()}


def _types(node: Mapping[str, Any], path: str) -> tuple[str, bool]:
    """The node's one non-null type and whether null is allowed."""
    declared = node.get("type")
    if declared is None and ("enum" in node or "const" in node):
        values = node["enum"] if "enum" in node else [node["const"]]
        names = {"bool": "boolean", "int": "integer", "float": "number", "str": "string", "NoneType": "null"}
        kinds = {names.get(type(v).__name__, "object") for v in values}
        if kinds >= {"integer", "number"}:
            kinds.discard("integer")
        declared = sorted(kinds)
    if declared is None and "properties" in node:
        declared = "object"
    if declared is None and "anyOf" in node:  # ["X", null] spelled as anyOf
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        if len(branches) == 1:
            return _types(branches[0], path)[0], True
    types = [declared] if isinstance(declared, str) else list(declared or [])
    nullable = "null" in types
    others = [t for t in types if t != "null"]
    if len(others) != 1:
        msg = (
            f"JSON Schema at {path} has type {declared!r}: a column needs exactly one type besides null "
            "(use a resolve_choice step on a JSON string for mixed types)"
        )
        raise ConfigurationError(msg)
    return str(others[0]), nullable


def _arrow_type(node: Mapping[str, Any], path: str) -> tuple[pa.DataType, bool]:
    kind, nullable = _types(node, path)
    if kind == "object":
        if "properties" not in node:
            msg = f"JSON Schema object at {path} has no 'properties': a column needs its fields named"
            raise ConfigurationError(msg)
        return _struct(node, path), nullable
    if kind == "array":
        items = node.get("items")
        if not isinstance(items, Mapping):
            msg = f"JSON Schema array at {path} needs an 'items' schema"
            raise ConfigurationError(msg)
        return pa.list_(_field("item", items, f"{path}[]", required=False)), nullable
    if kind == "string" and node.get("format") == "date-time":
        return pa.timestamp("us", tz="UTC"), nullable
    if kind in _SCALARS:
        return _SCALARS[kind], nullable
    msg = f"JSON Schema type {kind!r} at {path} is not supported"
    raise ConfigurationError(msg)


def _field(name: str, node: Mapping[str, Any], path: str, *, required: bool) -> pa.Field:
    arrow, nullable = _arrow_type(node, path)
    # Arrow's reader refuses a null non-nullable child even under a null parent, so only
    # top-level fields are declared non-nullable; nested ``required`` is checked after the parse.
    top_level = path.count(".") == 1 and "[" not in path
    return pa.field(name, arrow, nullable=nullable or not required or not top_level)


def _nested_required(node: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths (parent..., child) of required fields inside objects, below the top level."""
    found: list[tuple[str, ...]] = []
    for name, child in node.get("properties", {}).items():
        if "properties" in child:
            path = (*prefix, name)
            found += [(*path, c) for c in child.get("required", [])]
            found += _nested_required(child, path)
    return found


def _struct(node: Mapping[str, Any], path: str) -> pa.StructType:
    required = set(node.get("required", []))
    properties = node["properties"]
    unknown = required - set(properties)
    if unknown:
        msg = f"JSON Schema at {path} requires {sorted(unknown)}, which are not in its properties"
        raise ConfigurationError(msg)
    return pa.struct(
        [_field(name, child, f"{path}.{name}", required=name in required) for name, child in properties.items()]
    )


class JsonSchemaFormat(JsonFormat):
    """JSON objects validated against a JSON Schema (types, ``required``, ``additionalProperties``).

    Fields the schema does not name are dropped, or dead-letter the record when the
    schema says ``"additionalProperties": false``.
    """

    def __init__(self, schema: Mapping[str, Any] | str | Path, **options: Any) -> None:
        loaded = _inline(_load(schema))
        strict = loaded.get("additionalProperties") is False
        super().__init__(json_schema_to_arrow(loaded), unexpected_fields="error" if strict else "ignore", **options)
        self.json_schema = loaded
        self._nested = _nested_required(loaded)
        self._required = [str(name) for name in loaded.get("required", [])]

    def decode(self, values: Sequence[bytes | None]) -> Decoded:
        decoded = super().decode(values)
        failures = [self._explain(f, values[f.row]) for f in decoded.failures]
        table = decoded.table
        if table is None or not self._nested:
            return Decoded(table, failures)
        bad = pa.array([False] * table.num_rows)
        reasons: list[tuple[pa.Array, str]] = []
        for path in self._nested:
            parent: pa.Array = table[path[0]].combine_chunks()
            for name in path[1:-1]:
                parent = pc.struct_field(parent, name)
            missing = pc.and_(pc.is_valid(parent), pc.is_null(pc.struct_field(parent, path[-1])))
            missing = pc.fill_null(missing, False)
            if pc.any(missing).as_py():
                reasons.append((missing, f"required field {'.'.join(path)!r} is missing or null"))
                bad = pc.or_(bad, missing)
        if not reasons:
            return Decoded(table, failures)
        lineage = table[LINEAGE].combine_chunks()
        for mask, reason in reasons:  # failures are few: a loop per failed record is fine
            failures += [Failure(row, DECODE_STEP, "DecodeError", reason) for row in lineage.filter(mask).to_pylist()]
        unique = {f.row: f for f in reversed(failures)}
        kept = table.filter(pc.invert(bad))
        return Decoded(kept if kept.num_rows else None, sorted(unique.values(), key=lambda f: f.row))

    def _explain(self, failure: Failure, value: bytes | None) -> Failure:
        """Arrow says "a required field was absent" without naming it: name it (failures are few)."""
        if "required field" not in failure.message or value is None:
            return failure
        try:
            record = orjson.loads(value)
        except orjson.JSONDecodeError:
            return failure
        if not isinstance(record, dict):
            return failure
        missing = [name for name in self._required if record.get(name) is None]
        if not missing:
            return failure
        return Failure(failure.row, failure.step, failure.error_class, f"required field(s) {missing} missing or null")

    def __repr__(self) -> str:
        return f"JsonSchemaFormat({self.schema!r})"
