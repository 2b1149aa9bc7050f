"""JSON Schema compatibility: a sound subset, after Confluent's rules.

A reader schema can read data written with a writer schema when every document valid under the
writer is valid under the reader. Checked, recursively through ``properties``, ``items``,
``additionalProperties`` and local ``$ref`` (``#/definitions/...``, ``#/$defs/...``):

- ``type``: the writer's types are among the reader's (``integer`` counts as a ``number``);
- ``enum`` / ``const``: the writer's values are among the reader's;
- bounds (``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``, ``minLength``,
  ``maxLength``, ``minItems``, ``maxItems``) and ``pattern``: the reader is not narrower;
- ``required``: the reader requires no property the writer leaves optional;
- a property only the reader declares: fine if the writer's content model is closed
  (``additionalProperties: false``), otherwise the writer may already send it with any value;
- a property only the writer declares: the reader's ``additionalProperties`` must accept it
  (a closed reader refuses it);
- ``additionalProperties``: a closed reader needs a closed writer.

Keywords outside this subset (``anyOf``, ``oneOf``, ``allOf``, ``not``, ``if``...) must be equal
in both, or the change is reported as not provable. The definition is validated with the
``jsonschema`` library when it is installed, else only its shape is checked.
"""

from __future__ import annotations

import json
import operator
from typing import Any

from stream_etl.errors import ConfigurationError

_TYPES = {"null", "boolean", "object", "array", "number", "integer", "string"}
_LOWER = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_OPAQUE = ("anyOf", "oneOf", "allOf", "not", "if", "then", "else", "patternProperties", "dependentRequired")


def normalize(definition: str) -> tuple[str, Any]:
    try:
        parsed = json.loads(definition)
    except json.JSONDecodeError as exc:
        msg = f"the JSON Schema is not valid JSON: {exc}"
        raise ConfigurationError(msg) from exc
    _validate(parsed)
    return json.dumps(parsed, sort_keys=True, separators=(",", ":")), parsed


def _validate(schema: Any) -> None:
    try:
        import jsonschema  # optional: a full meta-schema check
    except ImportError:
        if not isinstance(schema, (dict, bool)):
            msg = f"a JSON Schema is an object or a boolean, got {type(schema).__name__}"
            raise ConfigurationError(msg) from None
        if isinstance(schema, dict):
            bad = [t for t in _types(schema) or () if t not in _TYPES]
            if bad:
                msg = f"unknown JSON Schema type(s) {bad}; use {sorted(_TYPES)}"
                raise ConfigurationError(msg) from None
        return
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        msg = f"invalid JSON Schema: {exc.message}"
        raise ConfigurationError(msg) from exc


def reader_problems(reader: Any, writer: Any) -> list[str]:
    return _Check(reader, writer).check(reader, writer, "", set())


def _types(schema: dict[str, Any]) -> set[str] | None:
    found = schema.get("type")
    if found is None:
        return None
    return {found} if isinstance(found, str) else set(found)


class _Check:
    def __init__(self, reader_root: Any, writer_root: Any) -> None:
        self.roots = (reader_root, writer_root)

    def _deref(self, schema: Any, root: Any, seen: set[str]) -> Any:
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
            ref = schema["$ref"]
            if not ref.startswith("#/") or ref in seen:
                return schema
            seen = {*seen, ref}
            target = root
            for part in ref[2:].split("/"):
                target = target.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(target, dict) else {}
            schema = target
        return schema

    def check(self, reader: Any, writer: Any, path: str, refs: set[str]) -> list[str]:  # noqa: PLR0912
        reader = self._deref(reader, self.roots[0], refs)
        writer = self._deref(writer, self.roots[1], refs)
        at = path or "the root"
        if reader is True or reader == {}:
            return []
        if writer is False:
            return []
        if reader is False:
            return [f"at {at}: the reader accepts nothing"]
        if writer is True:
            writer = {}
        found: list[str] = []
        for key in ("$ref", *_OPAQUE):
            if reader.get(key) != writer.get(key):
                found.append(f"at {at}: '{key}' changed; changes to it are not checked, so not provably compatible")
        rtypes, wtypes = _types(reader), _types(writer)
        if rtypes is not None:
            accepted = rtypes | ({"integer"} if "number" in rtypes else set())
            if wtypes is None:
                found.append(f"at {at}: the reader narrows any type to {sorted(rtypes)}")
            elif wtypes - accepted:
                found.append(f"at {at}: type {sorted(wtypes)} cannot be read as {sorted(rtypes)}")
        found += self._values(reader, writer, at)
        if wtypes is None or "object" in wtypes:
            found += self._object(reader, writer, path, refs)
        if wtypes is None or "array" in wtypes:
            items = reader.get("items", {})
            if isinstance(items, (dict, bool)):
                found += self.check(items, writer.get("items", {}), f"{path}[]", refs)
        return found

    @staticmethod
    def _values(reader: dict[str, Any], writer: dict[str, Any], at: str) -> list[str]:
        found: list[str] = []
        renum = reader.get("enum", [reader["const"]] if "const" in reader else None)
        wenum = writer.get("enum", [writer["const"]] if "const" in writer else None)
        if renum is not None:
            if wenum is None:
                found.append(f"at {at}: the reader restricts values to {renum}")
            elif missing := [v for v in wenum if v not in renum]:
                found.append(f"at {at}: the writer's values {missing} are not in the reader's enum")
        for keys, narrower in ((_LOWER, operator.gt), (_UPPER, operator.lt)):
            for key in keys:
                if key in reader and (key not in writer or narrower(reader[key], writer[key])):
                    found.append(f"at {at}: {key} {writer.get(key, 'unset')} narrowed to {reader[key]}")
        if "pattern" in reader and reader.get("pattern") != writer.get("pattern"):
            found.append(f"at {at}: pattern {writer.get('pattern')!r} changed to {reader['pattern']!r}")
        return found

    def _object(self, reader: dict[str, Any], writer: dict[str, Any], path: str, refs: set[str]) -> list[str]:
        found: list[str] = []
        prefix = f"{path}." if path else ""
        rprops, wprops = reader.get("properties", {}), writer.get("properties", {})
        radd, wadd = reader.get("additionalProperties", True), writer.get("additionalProperties", True)
        for name in sorted(set(reader.get("required", [])) - set(writer.get("required", []))):
            found.append(f"property {prefix}{name} is required by the reader but not by the writer")
        for name, schema in rprops.items():
            if name in wprops:
                found += self.check(schema, wprops[name], prefix + name, refs)
            elif wadd is not False:  # an open writer may already send it, with any value its model allows
                extra = self.check(schema, wadd, prefix + name, refs)
                if extra:
                    found.append(f"property {prefix}{name} added to an open content model: the writer may send it")
        for name, schema in wprops.items():
            if name not in rprops:
                if radd is False:
                    found.append(f"property {prefix}{name} removed under a closed content model")
                else:
                    found += self.check(radd, schema, prefix + name, refs)
        if radd is False and wadd is not False:
            found.append(f"at {path or 'the root'}: the reader closes the content model (additionalProperties: false)")
        elif isinstance(radd, dict) and wadd is not False:
            found += self.check(radd, wadd, prefix + "*", refs)
        return found
