"""`stream-etl catalog|connections|jobs|runs|tokens|api|worker`: help, flows, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stream_etl.cli import app
from stream_etl.control.store import Store

runner = CliRunner()

COMMANDS = [
    ["catalog"],
    *[["catalog", c] for c in ("databases", "create-database", "delete-database", "tables", "table", "create-table")],
    *[["catalog", c] for c in ("versions", "diff", "partitions")],
    ["connections"],
    *[["connections", c] for c in ("new-key", "add", "list", "show", "delete", "test")],
    ["jobs"],
    *[["jobs", c] for c in ("create", "list", "show", "delete", "start")],
    ["runs"],
    *[["runs", c] for c in ("list", "show", "stop", "wait")],
    ["tokens"],
    *[["tokens", c] for c in ("create", "list", "revoke")],
    ["api"],
    ["api", "serve"],
    ["worker"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_control_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def _cli(store: Store, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> tuple[int, str]:  # noqa: A002
    url = store.engine.url.render_as_string(hide_password=False)
    result = runner.invoke(app, list(args), input=input, env={"STREAM_ETL_CONTROL_DB": url, **(env or {})})
    return result.exit_code, result.output


def test_catalog_commands(store: Store, tmp_path: Path) -> None:
    assert _cli(store, "catalog", "create-database", "lake", "--description", "the lake")[0] == 0
    assert _cli(store, "catalog", "create-database", "lake")[0] == 1  # exists
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps([{"name": "id", "type": "int64"}, {"name": "dt", "type": "string"}]))
    code, output = _cli(
        store, "catalog", "create-table", "lake", "events", "--location", "s3://lake/events",
        "--schema-file", str(schema), "--partition-key", "dt", "--parameter", "owner=me",
    )  # fmt: skip
    assert code == 0, output
    code, output = _cli(store, "catalog", "tables", "lake", "--json")
    assert code == 0 and json.loads(output)[0]["partition_keys"] == ["dt"]
    code, output = _cli(store, "catalog", "table", "lake", "events")
    assert json.loads(output)["schema"][0] == {"name": "id", "type": "int64", "nullable": True}
    assert "1" in _cli(store, "catalog", "versions", "lake", "events")[1]
    assert json.loads(_cli(store, "catalog", "diff", "lake", "events")[1]) == {
        "added": [],
        "removed": [],
        "changed": [],
    }
    assert json.loads(_cli(store, "catalog", "partitions", "lake", "events")[1]) == []
    assert "lake" in _cli(store, "catalog", "databases")[1]
    code, output = _cli(store, "catalog", "table", "lake", "nope")
    assert code == 1 and "no table 'lake.nope'" in output
    assert _cli(store, "catalog", "delete-database", "lake")[0] == 0


def test_job_and_run_commands(store: Store) -> None:
    code, output = _cli(
        store, "jobs", "create", "orders", "--topology", "topologies/orders.py", "--arg", "topic=orders",
        "--workers", "2", "--mode", "until-caught-up", "--max-retries", "1", "--timeout", "600",
    )  # fmt: skip
    assert code == 0, output
    assert json.loads(output)["workers"] == 2
    assert _cli(store, "jobs", "create", "bad", "--topology", "t.py", "--mode", "often")[0] == 2
    assert _cli(store, "jobs", "create", "bad", "--topology", "t.py", "--connection", "missing")[0] == 2
    assert "orders" in _cli(store, "jobs", "list")[1]
    assert json.loads(_cli(store, "jobs", "show", "orders")[1])["arguments"] == {"topic": "orders"}
    code, output = _cli(store, "jobs", "start", "orders")
    assert code == 0
    run_id = output.split()[0]
    assert _cli(store, "jobs", "start", "orders")[0] == 1  # one active run per job
    assert json.loads(_cli(store, "runs", "list", "--json")[1])[0]["state"] == "WAITING"
    assert json.loads(_cli(store, "runs", "show", run_id)[1])["job"] == "orders"
    assert _cli(store, "runs", "stop", run_id)[0] == 0
    code, output = _cli(store, "runs", "wait", run_id, "--timeout", "5")
    assert code == 1 and json.loads(output)["state"] == "STOPPED"  # ended, but did not succeed
    assert _cli(store, "runs", "show", "9999")[0] == 1
    assert _cli(store, "jobs", "delete", "orders")[0] == 0


def test_token_commands(store: Store) -> None:
    code, output = _cli(store, "tokens", "create", "ci", "--role", "operator")
    assert code == 0
    token = output.strip().splitlines()[0]
    assert token.startswith("se_")
    listed = _cli(store, "tokens", "list")[1]
    assert "operator" in listed and token not in listed
    assert _cli(store, "tokens", "create", "x", "--role", "root")[0] == 2
    assert _cli(store, "tokens", "revoke", "ci")[0] == 0
    assert _cli(store, "tokens", "revoke", "nobody")[0] == 1


@pytest.mark.services  # test-connection reaches the machine's Postgres
def test_connection_commands_and_key_file(store: Store, tmp_path: Path) -> None:
    key_file = tmp_path / "control.key"
    env = {"STREAM_ETL_CONTROL_KEY_FILE": str(key_file)}
    code, output = _cli(store, "connections", "add", "pg", "--kind", "postgres", env=env)
    assert code == 2 and "new-key" in output
    assert _cli(store, "connections", "new-key", env=env)[0] == 0
    assert (key_file.stat().st_mode & 0o777) == 0o600
    code, output = _cli(
        store, "connections", "add", "pg", "--kind", "postgres", "--field", "database=test", "--secret", "password",
        input="s3cr3t-pg\n", env=env,
    )  # fmt: skip
    assert code == 0, output
    code, output = _cli(store, "connections", "test", "pg", env=env)  # the machine's Postgres (trust auth)
    assert code == 0 and "Postgres reached" in output
    assert _cli(store, "connections", "add", "k", "--kind", "kafka", env=env)[0] == 2  # bootstrap_servers missing
    key_file.chmod(0o640)
    code, output = _cli(store, "connections", "test", "pg", env=env)
    assert code == 2 and "chmod 600" in output
    assert _cli(store, "connections", "delete", "pg")[0] == 0
