"""`stream-etl registry ...`: help, flows, exit codes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from stream_etl.control.store import Store
from tests.stream_etl.control.compatibility.test_protobuf import ID, definition
from tests.stream_etl.control.test_cli import _cli, runner
from tests.stream_etl.control.test_registry import V1, V2, avro

COMMANDS = [
    "create",
    "list",
    "delete",
    "schemas",
    "schema-create",
    "register",
    "check",
    "versions",
    "show",
    "diff",
    "set-compatibility",
    "delete-schema",
]


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_every_registry_command_has_help(command: str) -> None:
    from stream_etl.cli import app

    result = runner.invoke(app, ["registry", *([command] if command else []), "--help"])
    assert result.exit_code == 0 and "Usage" in result.output, result.output


def test_registry_flow(store: Store, tmp_path: Path) -> None:
    v1, v2, bad = tmp_path / "v1.avsc", tmp_path / "v2.avsc", tmp_path / "bad.avsc"
    v1.write_text(V1)
    v2.write_text(V2)
    bad.write_text(avro({"name": "id", "type": "int"}))
    assert _cli(store, "registry", "create", "shop", "--description", "orders")[0] == 0
    assert _cli(store, "registry", "create", "shop")[0] == 1
    assert json.loads(_cli(store, "registry", "list", "--json")[1])[0]["name"] == "shop"
    code, output = _cli(store, "registry", "schema-create", "shop", "orders", "--file", str(v1), "--format", "avro")
    assert code == 0 and "version 1 created (schema id 1)" in output
    assert _cli(store, "registry", "register", "shop", "orders", "--file", str(v2))[0] == 0

    code, output = _cli(store, "registry", "register", "shop", "orders", "--file", str(bad))
    assert code == 1 and "at id: the writer's long cannot be read as int" in output
    code, output = _cli(store, "registry", "check", "shop", "orders", "--file", str(bad))
    assert code == 1 and "incompatible under BACKWARD (checked against v2)" in output
    code, output = _cli(store, "registry", "check", "shop", "orders", "--file", str(v1), "--mode", "forward", "--json")
    assert code == 0 and json.loads(output)["compatible"] is True

    versions = json.loads(_cli(store, "registry", "versions", "shop", "orders", "--json")[1])
    assert [(v["version"], v["id"]) for v in versions] == [(1, 1), (2, 2)]
    assert json.loads(_cli(store, "registry", "show", "shop", "orders", "--json")[1])["version"] == 2
    assert json.loads(_cli(store, "registry", "show", "--id", "1", "--json")[1])["definition"] == V1
    assert json.loads(_cli(store, "registry", "show", "shop", "orders", "--version", "1", "--json")[1])["id"] == 1
    assert _cli(store, "registry", "show")[0] == 2
    assert _cli(store, "registry", "show", "--id", "99")[0] == 1
    assert "+++ shop.orders v2" in _cli(store, "registry", "diff", "shop", "orders")[1]

    assert _cli(store, "registry", "set-compatibility", "shop", "orders", "none")[0] == 0
    assert _cli(store, "registry", "register", "shop", "orders", "--file", str(bad))[0] == 0
    assert _cli(store, "registry", "set-compatibility", "shop", "orders", "sideways")[0] == 2
    assert json.loads(_cli(store, "registry", "schemas", "shop", "--json")[1])[0]["latest_version"] == 3
    assert _cli(store, "registry", "delete-schema", "shop", "orders")[0] == 0
    assert _cli(store, "registry", "delete", "shop")[0] == 0
    assert _cli(store, "registry", "delete", "shop")[0] == 1


def test_protobuf_descriptor_sets_register_from_binary_files(store: Store, tmp_path: Path) -> None:
    desc = tmp_path / "orders.desc"
    desc.write_bytes(base64.b64decode(definition(ID, as_json=False)))
    assert _cli(store, "registry", "create", "shop")[0] == 0
    code, output = _cli(
        store, "registry", "schema-create", "shop", "orders", "--file", str(desc), "--format", "protobuf"
    )
    assert code == 0, output
    as_json = tmp_path / "orders.json"
    as_json.write_text(definition(ID))  # the same set as JSON: the existing version
    assert "(schema id 1)" in _cli(store, "registry", "register", "shop", "orders", "--file", str(as_json))[1]
    invalid = tmp_path / "bad.avsc"
    invalid.write_text('{"type": "record"}')
    assert _cli(store, "registry", "schema-create", "shop", "bad", "--file", str(invalid))[0] == 2
