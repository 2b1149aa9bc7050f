"""`stream-etl triggers|workflows|scheduler`: help, a workflow's flow and history, exit codes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from stream_etl.cli import app
from stream_etl.control.connections import Connections
from stream_etl.control.jobs import Jobs
from stream_etl.control.scheduler import Scheduler
from stream_etl.control.store import Store
from tests.stream_etl.control.test_cli import _cli

COMMANDS = [
    ["triggers"],
    *[["triggers", c] for c in ("create", "list", "show", "delete", "enable", "disable", "start")],
    ["workflows"],
    *[["workflows", c] for c in ("create", "list", "show", "delete", "run", "runs", "run-show", "resume", "stop")],
    ["scheduler"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_trigger_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_trigger_commands(store: Store) -> None:
    for job in ("load", "report"):
        assert _cli(store, "jobs", "create", job, "--topology", "topologies/orders.py")[0] == 0
    code, output = _cli(
        store, "triggers", "create", "hourly", "--type", "scheduled", "--schedule", "0 * * * *", "--job", "load",
        "--arg", "topic=t",
    )  # fmt: skip
    assert code == 0, output
    assert json.loads(output)["actions"] == [{"job": "load", "crawler": None, "arguments": {"topic": "t"}}]
    code, output = _cli(
        store, "triggers", "create", "bad", "--type", "scheduled", "--schedule", "nope", "--job", "load"
    )
    assert code == 2 and "not a cron expression" in output
    code, output = _cli(
        store, "triggers", "create", "then", "--type", "conditional", "--condition", "job:load=succeeded",
        "--condition", "crawler:raw=FAILED", "--logical", "any", "--job", "report",
    )  # fmt: skip
    assert code == 0, output
    assert json.loads(output)["predicate"]["conditions"][1] == {"job": None, "crawler": "raw", "state": "FAILED"}
    assert "CONDITIONAL" in _cli(store, "triggers", "list")[1]
    assert _cli(store, "triggers", "disable", "hourly")[0] == 0
    assert json.loads(_cli(store, "triggers", "list", "--json")[1])[0]["enabled"] is False
    assert _cli(store, "triggers", "enable", "hourly")[0] == 0
    code, output = _cli(store, "triggers", "start", "hourly")
    assert code == 1 and "only ON_DEMAND" in output
    assert _cli(store, "triggers", "create", "now", "--type", "on-demand", "--job", "load")[0] == 0
    code, output = _cli(store, "triggers", "start", "now")
    assert code == 0 and "job load: WAITING (run 1)" in output
    assert json.loads(_cli(store, "triggers", "show", "now")[1])["firings"][0]["actions"][0]["job_run_id"] == 1
    assert _cli(store, "triggers", "delete", "now")[0] == 0
    assert _cli(store, "triggers", "show", "now")[0] == 1


def test_workflow_commands_run_resume_and_show_history(store: Store) -> None:
    for job in ("load", "report"):
        assert _cli(store, "jobs", "create", job, "--topology", "topologies/orders.py")[0] == 0
    code, output = _cli(store, "workflows", "create", "daily", "--property", "day=1", "--description", "d")
    assert code == 0 and json.loads(output)["default_run_properties"] == {"day": "1"}
    assert (
        _cli(store, "triggers", "create", "go", "--type", "on-demand", "--job", "load", "--workflow", "daily")[0] == 0
    )
    code, output = _cli(
        store, "triggers", "create", "next", "--type", "conditional", "--condition", "job:load",
        "--job", "report", "--workflow", "daily",
    )  # fmt: skip
    assert code == 0, output
    graph = json.loads(_cli(store, "workflows", "show", "daily")[1])["graph"]
    assert [n["id"] for n in graph["nodes"]] == ["trigger:go", "job:load", "trigger:next", "job:report"]

    code, output = _cli(store, "workflows", "run", "daily", "--property", "day=2")
    assert code == 0, output
    run_id = int(output.split()[0])
    jobs, scheduler = Jobs(store), Scheduler(store, Connections(store, None))
    jobs.update_run(jobs.list_runs(job="load")[0].id, state="SUCCEEDED")
    scheduler.tick()
    jobs.update_run(jobs.list_runs(job="report")[0].id, state="FAILED", error="boom")
    scheduler.tick()

    code, output = _cli(store, "workflows", "run-show", str(run_id))
    assert code == 0 and f"workflow run {run_id} of daily: FAILED" in output and "day=2" in output
    assert "job:report FAILED: boom" in output and "job:load -> trigger:next [SUCCEEDED]" in output
    code, output = _cli(store, "workflows", "resume", str(run_id))
    assert code == 0, output
    resumed = int(output.split()[0])
    shown = json.loads(_cli(store, "workflows", "run-show", str(resumed), "--json")[1])
    assert shown["previous_run_id"] == run_id and shown["run_properties"] == {"day": "2"}
    assert {n["node"]: n["state"] for n in shown["nodes"]} == {"job:load": "SUCCEEDED", "job:report": "WAITING"}
    history = json.loads(_cli(store, "workflows", "runs", "daily", "--json")[1])
    assert [(r["id"], r["state"]) for r in history] == [(resumed, "RUNNING"), (run_id, "FAILED")]
    assert str(resumed) in _cli(store, "workflows", "runs", "daily")[1]
    assert _cli(store, "workflows", "delete", "daily")[0] == 1  # a run is RUNNING
    assert _cli(store, "workflows", "stop", str(resumed))[0] == 0
    assert _cli(store, "workflows", "delete", "daily")[0] == 0
    assert _cli(store, "workflows", "run-show", str(resumed))[0] == 1
