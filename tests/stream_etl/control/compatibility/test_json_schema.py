"""JSON Schema compatibility: each rule with a compatible and an incompatible case."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stream_etl.control import compatibility
from stream_etl.errors import ConfigurationError


def problems(reader: Any, writer: Any) -> list[str]:
    """Why ``reader`` cannot read documents valid under ``writer``."""
    _fp, new = compatibility.parse("JSON", json.dumps(reader))
    _fp, old = compatibility.parse("JSON", json.dumps(writer))
    return [p.split(": ", 1)[1] for p in compatibility.problems("JSON", "BACKWARD", new, old)]


def obj(properties: dict[str, Any], *, required: list[str] | None = None, closed: bool = False) -> dict[str, Any]:
    found: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        found["required"] = required
    if closed:
        found["additionalProperties"] = False
    return found


INT, NUM, STR = {"type": "integer"}, {"type": "number"}, {"type": "string"}


def test_types_widen_but_do_not_narrow() -> None:
    assert problems(obj({"a": NUM}), obj({"a": INT})) == []
    assert problems(obj({"a": {"type": ["string", "null"]}}), obj({"a": STR})) == []
    assert problems(obj({"a": INT}), obj({"a": NUM})) == ["at a: type ['number'] cannot be read as ['integer']"]
    assert problems(obj({"a": STR}), obj({"a": {}})) == ["at a: the reader narrows any type to ['string']"]


def test_required_properties() -> None:
    assert problems(obj({"a": INT}), obj({"a": INT}, required=["a"])) == []  # required removed
    assert problems(obj({"a": INT}, required=["a"]), obj({"a": INT})) == [
        "property a is required by the reader but not by the writer"
    ]


def test_properties_added_under_open_and_closed_content_models() -> None:
    assert problems(obj({"a": INT, "b": STR}), obj({"a": INT}, closed=True)) == []
    assert problems(obj({"a": INT, "b": STR}), obj({"a": INT})) == [
        "property b added to an open content model: the writer may send it"
    ]
    assert problems(obj({"a": INT, "b": {}}), obj({"a": INT})) == []  # b accepts anything


def test_properties_removed_under_open_and_closed_content_models() -> None:
    assert problems(obj({"a": INT}), obj({"a": INT, "b": STR})) == []
    found = problems(obj({"a": INT}, closed=True), obj({"a": INT, "b": STR}))
    assert "property b removed under a closed content model" in found


def test_additional_properties() -> None:
    typed = {**obj({}), "additionalProperties": NUM}
    assert problems(typed, {**obj({}), "additionalProperties": INT}) == []
    assert problems({**obj({}), "additionalProperties": INT}, typed) == [
        "at *: type ['number'] cannot be read as ['integer']"
    ]
    assert problems(obj({}), obj({}, closed=True)) == []
    assert problems(obj({}, closed=True), obj({})) == [
        "at the root: the reader closes the content model (additionalProperties: false)"
    ]


def test_enums() -> None:
    assert problems(obj({"s": {"enum": ["a", "b", "c"]}}), obj({"s": {"enum": ["a", "b"]}})) == []
    assert problems(obj({"s": {"enum": ["a"]}}), obj({"s": {"enum": ["a", "b"]}})) == [
        "at s: the writer's values ['b'] are not in the reader's enum"
    ]
    assert problems(obj({"s": {"enum": ["a", "b"]}}), obj({"s": {"const": "a"}})) == []


def test_array_items() -> None:
    assert problems({"type": "array", "items": NUM}, {"type": "array", "items": INT}) == []
    assert problems({"type": "array", "items": INT}, {"type": "array", "items": NUM}) == [
        "at []: type ['number'] cannot be read as ['integer']"
    ]


def test_bounds_and_patterns() -> None:
    assert problems({"type": "string", "maxLength": 20}, {"type": "string", "maxLength": 10}) == []
    assert problems({"type": "string", "maxLength": 10}, {"type": "string", "maxLength": 20}) == [
        "at the root: maxLength 20 narrowed to 10"
    ]
    assert problems({"type": "integer", "minimum": 0}, {"type": "integer", "minimum": 5}) == []
    assert problems({"type": "integer", "minimum": 5}, {"type": "integer"}) == [
        "at the root: minimum unset narrowed to 5"
    ]
    assert problems({"type": "string", "pattern": "^a"}, {"type": "string", "pattern": "^a"}) == []
    assert problems({"type": "string", "pattern": "^a"}, {"type": "string"})


def test_local_refs_are_followed_and_other_combinators_must_not_change() -> None:
    def with_ref(target: dict[str, Any]) -> dict[str, Any]:
        return {"$defs": {"id": target}, **obj({"id": {"$ref": "#/$defs/id"}})}

    assert problems(with_ref(NUM), with_ref(INT)) == []
    assert problems(with_ref(INT), with_ref(NUM)) == ["at id: type ['number'] cannot be read as ['integer']"]
    one_of = obj({"a": {"oneOf": [INT, STR]}})
    assert problems(one_of, one_of) == []
    found = problems(obj({"a": {"oneOf": [INT]}}), one_of)
    assert found == ["at a: 'oneOf' changed; changes to it are not checked, so not provably compatible"]


def test_boolean_schemas() -> None:
    assert problems(True, obj({"a": INT})) == []
    assert problems(obj({"a": INT}), False) == []
    assert problems(False, True) == ["at the root: the reader accepts nothing"]


def test_invalid_definitions_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        compatibility.parse("JSON", "{")
    with pytest.raises(ConfigurationError):
        compatibility.parse("JSON", json.dumps({"type": "strnig"}))
    with pytest.raises(ConfigurationError):
        compatibility.parse("JSON", "[1, 2]")
