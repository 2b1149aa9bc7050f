"""Avro schema resolution: each rule with a compatible and an incompatible case."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stream_etl.control import compatibility
from stream_etl.errors import ConfigurationError


def _record(*fields: dict[str, Any], name: str = "Order", **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "shop", "fields": list(fields), **extra}


def _field(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def problems(reader: Any, writer: Any) -> list[str]:
    """Why ``reader`` cannot read data written with ``writer`` (BACKWARD: reader is the new one)."""
    _fp, new = compatibility.parse("AVRO", json.dumps(reader))
    _fp, old = compatibility.parse("AVRO", json.dumps(writer))
    return compatibility.problems("AVRO", "BACKWARD", new, old)


def _wrap(type_: Any) -> dict[str, Any]:
    return _record(_field("v", type_))


@pytest.mark.parametrize(
    ("writer", "reader", "ok"),
    [
        ("int", "long", True),
        ("int", "double", True),
        ("long", "float", True),
        ("float", "double", True),
        ("string", "bytes", True),
        ("bytes", "string", True),
        ("long", "int", False),
        ("double", "float", False),
        ("string", "int", False),
        ("boolean", "string", False),
    ],
    ids=lambda v: str(v),
)
def test_primitive_promotions(writer: str, reader: str, ok: bool) -> None:
    found = problems(_wrap(reader), _wrap(writer))
    assert (found == []) is ok, found
    if not ok:
        assert f"the writer's {writer} cannot be read as {reader}" in found[0]


def test_a_reader_field_missing_in_the_writer_needs_a_default() -> None:
    v1 = _record(_field("id", "long"))
    assert problems(_record(_field("id", "long"), _field("note", "string", default="")), v1) == []
    found = problems(_record(_field("id", "long"), _field("note", "string")), v1)
    assert found == ["BACKWARD (the previous version): field note is not in the writer's schema and has no default"]


def test_writer_fields_the_reader_lacks_are_skipped() -> None:
    assert problems(_record(_field("id", "long")), _record(_field("id", "long"), _field("x", "string"))) == []


def test_fields_match_by_reader_aliases() -> None:
    writer = _record(_field("customer", "string"))
    assert problems(_record(_field("buyer", "string", aliases=["customer"])), writer) == []
    assert "field buyer is not in the writer's schema" in problems(_record(_field("buyer", "string")), writer)[0]


def test_records_match_by_unqualified_name_or_alias() -> None:
    writer = _record(_field("id", "long"), name="Order")
    assert problems(_record(_field("id", "long"), name="other.Order"), writer) == []
    assert problems(_record(_field("id", "long"), name="Purchase", aliases=["Order"]), writer) == []
    found = problems(_record(_field("id", "long"), name="Purchase"), writer)
    assert "record shop.Order is not the reader's shop.Purchase" in found[0]


def test_enum_symbols() -> None:
    def enum(*symbols: str, **extra: Any) -> dict[str, Any]:
        return _wrap({"type": "enum", "name": "Status", "symbols": list(symbols), **extra})

    assert problems(enum("NEW", "PAID", "SHIPPED"), enum("NEW", "PAID")) == []
    assert "lacks the writer's symbols ['SHIPPED']" in problems(enum("NEW", "PAID"), enum("NEW", "PAID", "SHIPPED"))[0]
    assert problems(enum("NEW", "PAID", default="NEW"), enum("NEW", "PAID", "SHIPPED")) == []


def test_unions() -> None:
    assert problems(_wrap(["null", "long"]), _wrap("int")) == []  # a reader union: some branch reads it
    assert problems(_wrap(["null", "string"]), _wrap(["null", "string"])) == []
    assert "matches no branch of the reader's union" in problems(_wrap(["null", "string"]), _wrap("int"))[0]
    found = problems(_wrap("string"), _wrap(["null", "string"]))  # every writer branch must resolve
    assert found and "the writer's null cannot be read as string" in found[0]
    assert problems(_wrap(["null", "string"]), _wrap(["null", "string", "long"]))


def test_arrays_maps_and_fixed() -> None:
    assert problems(_wrap({"type": "array", "items": "long"}), _wrap({"type": "array", "items": "int"})) == []
    assert "at v[]" in problems(_wrap({"type": "array", "items": "int"}), _wrap({"type": "array", "items": "long"}))[0]
    assert problems(_wrap({"type": "map", "values": "double"}), _wrap({"type": "map", "values": "float"})) == []
    assert problems(_wrap({"type": "map", "values": "float"}), _wrap({"type": "map", "values": "double"}))
    assert problems(_wrap({"type": "array", "items": "int"}), _wrap({"type": "map", "values": "int"}))
    fixed = {"type": "fixed", "name": "Hash", "size": 16}
    assert problems(_wrap(fixed), _wrap(fixed)) == []
    assert "has size 32 in the writer, 16 here" in problems(_wrap(fixed), _wrap({**fixed, "size": 32}))[0]


def test_named_types_resolve_through_references_and_recursion() -> None:
    node = {
        "type": "record",
        "name": "Node",
        "fields": [_field("value", "int"), _field("next", ["null", "Node"], default=None)],
    }
    wider = json.loads(json.dumps(node).replace('"int"', '"long"'))
    assert problems(_wrap(wider), _wrap(node)) == []
    assert "the writer's long cannot be read as int" in problems(_wrap(node), _wrap(wider))[0]
    status = {"type": "enum", "name": "Status", "symbols": ["A"]}
    both = _record(_field("a", status), _field("b", "shop.Status"))
    grown = _record(_field("a", {**status, "symbols": ["A", "B"]}), _field("b", "shop.Status"))
    assert problems(grown, both) == []
    assert problems(both, grown)  # the reference "b" resolves to the grown enum too


def test_logical_types_resolve_as_their_underlying_type() -> None:
    millis = {"type": "long", "logicalType": "timestamp-millis"}
    assert problems(_wrap(millis), _wrap("long")) == []
    assert problems(_wrap({"type": "int", "logicalType": "date"}), _wrap(millis))


def test_invalid_definitions_are_refused_and_equal_ones_share_a_fingerprint() -> None:
    with pytest.raises(ConfigurationError, match="invalid Avro schema"):
        compatibility.parse("AVRO", json.dumps(_record(_field("id", "int", default="x"))))
    with pytest.raises(ConfigurationError):
        compatibility.parse("AVRO", "{not json")
    spaced = json.dumps(_record(_field("id", "int")), indent=4)
    assert (
        compatibility.parse("AVRO", spaced)[0]
        == compatibility.parse("AVRO", json.dumps(_record(_field("id", "int"))))[0]
    )


@pytest.mark.parametrize(
    ("mode", "checked"),
    [
        ("NONE", []),
        ("DISABLED", []),
        ("BACKWARD", [3]),
        ("FORWARD", [3]),
        ("FULL", [3]),
        ("BACKWARD_ALL", [1, 2, 3]),
        ("FORWARD_ALL", [1, 2, 3]),
        ("FULL_ALL", [1, 2, 3]),
    ],
)
def test_modes_pick_the_versions_to_check(mode: str, checked: list[int]) -> None:
    assert compatibility.against(mode, [1, 2, 3]) == checked


def test_forward_and_full_check_the_other_direction() -> None:
    _fp, old = compatibility.parse("AVRO", json.dumps(_record(_field("id", "long"))))
    _fp, new = compatibility.parse("AVRO", json.dumps(_record(_field("id", "long"), _field("n", "string"))))
    assert compatibility.problems("AVRO", "FORWARD", new, old) == []  # the old reader skips n
    assert compatibility.problems("AVRO", "BACKWARD", new, old)  # the new reader needs n
    assert [p.split(" ")[0] for p in compatibility.problems("AVRO", "FULL", new, old)] == ["BACKWARD"]
    assert compatibility.problems("AVRO", "NONE", new, old) == []
