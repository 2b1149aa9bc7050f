"""`stream-etl crawlers ...` and `stream-etl crawlers classifiers ...`: help, flow, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream_etl.control.catalog import Catalog
from stream_etl.control.store import Store
from tests.stream_etl.control.test_cli import _cli, runner

COMMANDS = [
    ["crawlers"],
    *[["crawlers", c] for c in ("create", "list", "show", "delete", "run", "runs")],
    ["crawlers", "classifiers"],
    *[["crawlers", "classifiers", c] for c in ("create", "list", "show", "delete")],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_crawler_command_has_help(command: list[str]) -> None:
    from stream_etl.cli import app

    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_create_run_and_list_a_crawler(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "events" / "dt=2026-11-21"
    folder.mkdir(parents=True)
    (folder / "a.json").write_text('{"id": 1, "name": "x"}\n')
    code, output = _cli(store, "crawlers", "create", "ev", "--database", "lake", "--path", str(tmp_path / "events"))
    assert code == 0, output
    assert json.loads(output)["targets"][0]["path"] == str(tmp_path / "events")

    code, output = _cli(store, "crawlers", "run", "ev")

    assert code == 0, output
    assert "created  events (json): id, name, dt" in output
    assert f"partition events 2026-11-21 at {folder}" in output
    assert Catalog(store).get_table("lake", "events").partition_keys == ["dt"]
    code, output = _cli(store, "crawlers", "runs", "ev", "--json")
    assert code == 0
    assert [r["state"] for r in json.loads(output)] == ["SUCCEEDED"]
    assert "SUCCEEDED" in _cli(store, "crawlers", "list")[1]
    code, output = _cli(store, "crawlers", "create", "ev", "--database", "lake", "--path", str(tmp_path), "--replace")
    assert code == 0, output
    assert json.loads(output)["last_run"]["state"] == "SUCCEEDED"  # the runs stay
    assert _cli(store, "crawlers", "create", "ev", "--database", "lake", "--path", str(tmp_path))[0] == 1  # exists
    assert _cli(store, "crawlers", "delete", "ev")[0] == 0
    assert _cli(store, "crawlers", "show", "ev")[0] == 1


def test_a_failed_run_exits_1_and_bad_settings_exit_2(store: Store, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    assert _cli(store, "crawlers", "create", "c", "--database", "lake", "--path", missing)[0] == 0
    code, output = _cli(store, "crawlers", "run", "c")
    assert code == 1
    assert "FAILED" in output and "missing" in output
    code, output = _cli(
        store,
        "crawlers",
        "create",
        "d",
        "--database",
        "lake",
        "--path",
        missing,
        "--recrawl-policy",
        "new-folders-only",
    )
    assert code == 2
    assert "update_behavior='log'" in output
    assert _cli(store, "crawlers", "create", "e", "--database", "lake")[0] == 2  # no target


def test_classifier_commands(store: Store) -> None:
    code, output = _cli(
        store, "crawlers", "classifiers", "create", "web", "--kind", "grok", "--pattern", "%{IP:ip} %{INT:n}"
    )
    assert code == 0, output
    assert json.loads(output)["settings"] == {"pattern": "%{IP:ip} %{INT:n}"}
    assert _cli(store, "crawlers", "classifiers", "create", "bad", "--kind", "grok", "--pattern", "%{NOPE:x}")[0] == 2
    assert _cli(store, "crawlers", "classifiers", "create", "r", "--kind", "regex")[0] == 2  # no pattern
    assert "web" in _cli(store, "crawlers", "classifiers", "list")[1]
    assert _cli(store, "crawlers", "classifiers", "delete", "web")[0] == 0
    assert _cli(store, "crawlers", "classifiers", "show", "web")[0] == 1
