"""Avro compatibility: the Avro specification's schema-resolution rules.

A reader schema can read data written with a writer schema when, recursively:

- the types are equal, or the writer's promotes to the reader's (``int`` to ``long``, ``float``
  or ``double``; ``long`` to ``float`` or ``double``; ``float`` to ``double``; ``string`` and
  ``bytes`` either way);
- records have the same unqualified name (or the writer's name is one of the reader's aliases);
  each reader field is matched in the writer by name or by one of the field's aliases, and a
  reader field the writer lacks has a default; writer fields the reader lacks are skipped;
- enums have the same name, and every writer symbol is a reader symbol (or the reader declares a
  ``default`` symbol);
- fixed types have the same name and size; arrays' items and maps' values resolve;
- a writer union: each of its branches resolves against the reader; a reader union (writer not a
  union): some branch resolves against the writer.

Logical types are ignored, as the specification says for resolution. Definitions are validated
and made canonical by fastavro's ``parse_schema`` (names fully qualified).
"""

from __future__ import annotations

import json
from typing import Any

from stream_etl.errors import ConfigurationError

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
_PROMOTIONS = {
    ("int", "long"),
    ("int", "float"),
    ("int", "double"),
    ("long", "float"),
    ("long", "double"),
    ("float", "double"),
    ("string", "bytes"),
    ("bytes", "string"),
}
_NAMED = {"record", "error", "enum", "fixed"}


def normalize(definition: str) -> tuple[str, Any]:
    try:
        from fastavro import parse_schema
    except ImportError as exc:  # pragma: no cover - depends on the install
        msg = "Avro schemas need fastavro: pip install 'stream-etl[avro]'"
        raise ConfigurationError(msg) from exc
    try:
        parsed = parse_schema(json.loads(definition), _write_hint=False)
    except Exception as exc:  # noqa: BLE001 - fastavro raises many types for a bad schema
        msg = f"invalid Avro schema: {type(exc).__name__}: {exc}"
        raise ConfigurationError(msg) from exc
    return json.dumps(parsed, sort_keys=True, separators=(",", ":")), parsed


def reader_problems(reader: Any, writer: Any) -> list[str]:
    return _Resolution(reader, writer).check(reader, writer, "")


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


class _Resolution:
    def __init__(self, reader: Any, writer: Any) -> None:
        self.reader_names = _named_types(reader)
        self.writer_names = _named_types(writer)
        self.seen: set[tuple[str, str]] = set()

    def check(self, reader: Any, writer: Any, path: str) -> list[str]:  # noqa: PLR0911
        r, w = _node(reader, self.reader_names), _node(writer, self.writer_names)
        at = path or "the root"
        if isinstance(w, list):
            return [p for branch in w for p in self.check(r, branch, path)]
        if isinstance(r, list):
            for branch in r:
                if not self.check(branch, w, path):
                    return []
            return [f"at {at}: the writer's {_describe(w)} matches no branch of the reader's union"]
        rtype, wtype = _kind(r), _kind(w)
        if rtype in _PRIMITIVES or wtype in _PRIMITIVES:
            if rtype == wtype or (wtype, rtype) in _PROMOTIONS:
                return []
            return [f"at {at}: the writer's {wtype} cannot be read as {rtype}"]
        if rtype != wtype:
            return [f"at {at}: the writer's {wtype} cannot be read as {rtype}"]
        if rtype in ("array", "map"):
            key, mark = ("items", "[]") if rtype == "array" else ("values", "{}")
            return self.check(r[key], w[key], path + mark)
        if not _same_name(r, w):
            return [f"at {at}: the writer's {rtype} {w['name']} is not the reader's {r['name']} (nor an alias of it)"]
        if rtype == "fixed":
            ok = r["size"] == w["size"]
            return [] if ok else [f"at {at}: fixed {r['name']} has size {w['size']} in the writer, {r['size']} here"]
        if rtype == "enum":
            missing = [s for s in w["symbols"] if s not in r["symbols"]]
            if missing and "default" not in r:
                return [f"at {at}: enum {r['name']} lacks the writer's symbols {missing} and has no default"]
            return []
        return self._record(r, w, path)

    def _record(self, r: dict[str, Any], w: dict[str, Any], path: str) -> list[str]:
        pair = (r["name"], w["name"])
        if pair in self.seen:  # a recursive type: assumed to resolve while it is being checked
            return []
        self.seen.add(pair)
        writer_fields = {f["name"]: f for f in w["fields"]}
        found: list[str] = []
        for field in r["fields"]:
            where = f"{path}.{field['name']}" if path else field["name"]
            names = [field["name"], *field.get("aliases", [])]
            match = next((writer_fields[n] for n in names if n in writer_fields), None)
            if match is not None:
                found += self.check(field["type"], match["type"], where)
            elif "default" not in field:
                found.append(f"field {where} is not in the writer's schema and has no default")
        return found


def _named_types(schema: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for branch in node:
                walk(branch)
        elif isinstance(node, dict):
            kind = node.get("type")
            if kind in _NAMED and "name" in node:
                found[node["name"]] = node
            for field in node.get("fields", []) if kind in ("record", "error") else []:
                walk(field["type"])
            for key in ("items", "values"):
                if key in node:
                    walk(node[key])
            if isinstance(kind, (dict, list)):
                walk(kind)

    walk(schema)
    return found


def _node(schema: Any, names: dict[str, Any]) -> Any:
    """A name resolved to its definition; ``{"type": "long", ...}`` to ``"long"``."""
    if isinstance(schema, str):
        return names.get(schema, schema)
    if isinstance(schema, dict) and schema.get("type") not in _NAMED | {"array", "map"}:
        return _node(schema["type"], names)
    return schema


def _kind(node: Any) -> str:
    kind = node if isinstance(node, str) else node["type"]
    return "record" if kind == "error" else str(kind)


def _describe(node: Any) -> str:
    return node if isinstance(node, str) else f"{node['type']} {node.get('name', '')}".rstrip()


def _same_name(r: dict[str, Any], w: dict[str, Any]) -> bool:
    aliases = {*r.get("aliases", []), *map(_short, r.get("aliases", []))}
    return _short(r["name"]) == _short(w["name"]) or w["name"] in aliases or _short(w["name"]) in aliases
