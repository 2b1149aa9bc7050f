"""Triggers and workflows end to end: a real scheduler (`stream-etl scheduler`) and worker
supervisor (`stream-etl worker`, the fixture of test_supervisor.py) against the real broker,
S3 and metadata store: a conditional trigger starts a second job after the first succeeded,
cron triggers run an until-caught-up job on schedule, and a workflow crawler -> job -> job
runs with its run properties, fails, is resumed, and its history reads back through the API
and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from connectors.kafka.admin import produce
from stream_etl.cli import app
from stream_etl.control.api import create_app
from stream_etl.control.catalog import Catalog
from stream_etl.control.crawl_targets import Target
from stream_etl.control.crawlers import Crawlers, CrawlerSpec
from stream_etl.control.jobs import FINISHED, Jobs, RunInfo, parse_spec
from stream_etl.control.store import Store
from stream_etl.control.tokens import Tokens
from stream_etl.control.trigger_specs import parse_trigger
from stream_etl.control.triggers import Triggers
from stream_etl.control.workflows import WorkflowRunInfo, Workflows, WorkflowSpec
from stream_etl.samples import orders
from tests.e2e.test_supervisor import _job, _wait, control, metadata_url, orders_of  # noqa: F401 - fixtures
from tests.e2e.workers import ROOT, assert_same_orders, read_table
from tests.services import Services

pytestmark = pytest.mark.timeout(600)

Control = tuple[Store, subprocess.Popen[bytes], str]


@contextmanager
def _scheduler(log: Path, services: Services, url: str) -> Iterator[Path]:
    """`stream-etl scheduler` on the store at ``url``, ticking every 0.3 s, logging to ``log``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_ETL_")}
    env |= {"PYTHONPATH": str(ROOT), **services.environment()}  # crawler targets use the scheduler's settings
    command = [sys.executable, "-m", "stream_etl", "scheduler", "--db", url, "--interval", "0.3"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=30) == 0, log.read_text()[-2000:]  # a graceful stop
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def scheduler(tmp_path: Path, services: Services, metadata_url: str) -> Iterator[Path]:  # noqa: F811
    with _scheduler(tmp_path / "scheduler.log", services, metadata_url) as log:
        yield log


@pytest.fixture
def second_scheduler(tmp_path: Path, services: Services, metadata_url: str) -> Iterator[Path]:  # noqa: F811
    """Another scheduler on the same store: each trigger slot must still fire once."""
    with _scheduler(tmp_path / "scheduler-2.log", services, metadata_url) as log:
        yield log


def _until(check: Callable[[], object], what: str, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


def _runs(jobs: Jobs, job: str, state: str = "SUCCEEDED") -> list[RunInfo]:
    return jobs.list_runs(job=job, state=state)


@pytest.mark.parametrize("metadata_url", ["sqlite", "postgres"], indirect=True)
def test_a_conditional_trigger_starts_the_second_job_after_the_first_succeeds_with_two_schedulers(
    services: Services,
    topic: Callable[..., str],
    unique: str,
    control: Control,  # noqa: F811
    scheduler: Path,
    second_scheduler: Path,
) -> None:
    store, _supervisor, log = control
    name = topic(partitions=2)
    produce(services.kafka_bootstrap, name, orders(1_000))
    first, second = (f"s3://{services.bucket}/{unique}/{t}" for t in ("first", "second"))
    jobs = Jobs(store)
    jobs.create(parse_spec(_job("first", name, first, f"{unique}-1", mode="until_caught_up")))
    jobs.create(parse_spec(_job("second", name, second, f"{unique}-2", mode="until_caught_up")))
    Triggers(store).create(
        parse_trigger(
            {
                "name": "after-first",
                "type": "CONDITIONAL",
                "predicate": {"conditions": [{"job": "first", "state": "SUCCEEDED"}]},
                "actions": [{"job": "second"}],
            }
        )
    )
    assert jobs.list_runs(job="second") == []
    run = jobs.start("first")
    assert _wait(jobs, run.id, lambda r: r.state in FINISHED, log).state == "SUCCEEDED"
    _until(lambda: _runs(jobs, "second"), "the second job never succeeded", scheduler)
    (later,) = jobs.list_runs(job="second")
    assert later.started_at is not None and jobs.get_run(run.id).ended_at <= later.started_at  # type: ignore[operator]
    assert_same_orders(read_table(second, services), range(1_000))
    time.sleep(1)  # a few more ticks of both schedulers
    assert len(jobs.list_runs(job="second")) == 1 and len(Triggers(store).firings("after-first")) == 1
    fired = [log for log in (scheduler, second_scheduler) if "trigger after-first fired [job-run:" in log.read_text()]
    assert len(fired) == 1


@pytest.mark.slow  # two until-caught-up runs one period apart: ~25 s every 10 s, ~110 s every minute
@pytest.mark.parametrize(
    ("schedule", "period_s"), [("*/10 * * * * *", 10), ("* * * * *", 60)], ids=["every-10s", "every-minute"]
)
def test_a_cron_trigger_runs_an_until_caught_up_job_on_schedule(
    services: Services,
    topic: Callable[..., str],
    table_uri: str,
    unique: str,
    control: Control,  # noqa: F811
    scheduler: Path,
    schedule: str,
    period_s: int,
) -> None:
    store, _supervisor, _log = control
    name = topic(partitions=1)
    produce(services.kafka_bootstrap, name, orders(300))
    jobs = Jobs(store)
    jobs.create(parse_spec(_job("ticks", name, table_uri, unique, mode="until_caught_up")))
    cron = {"name": "cron", "type": "SCHEDULED", "schedule": schedule, "actions": [{"job": "ticks"}]}
    Triggers(store).create(parse_trigger(cron))
    _until(lambda: _runs(jobs, "ticks"), "the first scheduled run", scheduler, timeout=period_s + 40)
    produce(services.kafka_bootstrap, name, orders(300, start=300))  # the next run reads these
    _until(lambda: len(_runs(jobs, "ticks")) >= 2, "the second scheduled run", scheduler, timeout=period_s + 40)
    fired = sorted(datetime.fromisoformat(f.slot) for f in Triggers(store).firings("cron"))
    assert fired[1] - fired[0] == timedelta(seconds=period_s) and fired[0].second % period_s == 0
    valid = sum(1 for amount in orders_of(range(600)) if amount >= 0)  # (a run may start before the produce)
    _until(lambda: (t := read_table(table_uri, services)) is not None and t.num_rows >= valid, "600 orders", scheduler)
    assert_same_orders(read_table(table_uri, services), range(600))  # every run exactly once


def _workflow_ended(workflows: Workflows, run_id: int, log: Path) -> WorkflowRunInfo:
    _until(lambda: workflows.get_run(run_id).state != "RUNNING", f"workflow run {run_id} never ended", log)
    return workflows.get_run(run_id)


def test_a_workflow_crawler_then_two_jobs_runs_fails_resumes_and_shows_its_history(
    services: Services,
    topic: Callable[..., str],
    unique: str,
    metadata_url: str,  # noqa: F811
    control: Control,  # noqa: F811
    scheduler: Path,
) -> None:
    store, _supervisor, _log = control
    raw = topic(partitions=2)
    produce(services.kafka_bootstrap, raw, orders(1_000))
    late = f"{raw}-late"  # the second job's topic: missing until the resume
    loaded, reported = (f"s3://{services.bucket}/{unique}/{t}" for t in ("loaded", "reported"))
    Crawlers(store).create(
        CrawlerSpec(name="raw", database="raw", targets=[Target(kind="kafka", path=raw)], sample_size=5)
    )
    jobs = Jobs(store)
    # The jobs' topic and table come from the run properties (load) and the action's arguments (report).
    jobs.create(parse_spec(_job("load", "unset", "s3://unset/x", f"{unique}-l", mode="until_caught_up")))
    jobs.create(
        parse_spec(_job("report", "unset", "s3://unset/x", f"{unique}-r", mode="until_caught_up", max_retries=0))
    )
    workflows, triggers = Workflows(store), Triggers(store)
    workflows.create(WorkflowSpec(name="daily", default_run_properties={"table": loaded, "batch_records": "500"}))
    for spec in (
        {"name": "daily-start", "type": "ON_DEMAND", "actions": [{"crawler": "raw"}]},
        {
            "name": "daily-load",
            "type": "CONDITIONAL",
            "predicate": {"conditions": [{"crawler": "raw"}]},
            "actions": [{"job": "load"}],
        },
        {
            "name": "daily-report",
            "type": "CONDITIONAL",
            "predicate": {"conditions": [{"job": "load"}]},
            "actions": [{"job": "report", "arguments": {"topic": late, "table": reported}}],
        },
    ):
        triggers.create(parse_trigger({**spec, "workflow": "daily"}))

    runner = CliRunner()
    started = runner.invoke(app, ["workflows", "run", "daily", "--property", f"topic={raw}", "--db", metadata_url])
    assert started.exit_code == 0, started.output
    run_id = int(started.output.split()[0])
    failed = _workflow_ended(workflows, run_id, scheduler)
    states = {n.node: n.state for n in failed.nodes}
    assert (failed.state, states) == (
        "FAILED",
        {"crawler:raw": "SUCCEEDED", "job:load": "SUCCEEDED", "job:report": "FAILED"},
    ), failed.error
    assert Catalog(store).get_table("raw", raw).classification == "json"  # the crawler's work
    assert_same_orders(read_table(loaded, services), range(1_000))
    (load_run,) = jobs.list_runs(job="load")
    assert load_run.arguments == {"table": loaded, "batch_records": "500", "topic": raw}
    assert failed.error is not None and late in failed.error

    topic(partitions=1, suffix="-late")
    produce(services.kafka_bootstrap, late, orders(200))
    resumed = runner.invoke(
        app, ["workflows", "resume", str(run_id), "--wait", "--timeout", "180", "--db", metadata_url]
    )
    assert resumed.exit_code == 0, resumed.output + scheduler.read_text()[-3000:]
    shown = json.loads(resumed.output)
    assert shown["state"] == "COMPLETED" and shown["previous_run_id"] == run_id
    assert_same_orders(read_table(reported, services), range(200))
    # only the failed node ran again
    assert [len(jobs.list_runs(job=j)) for j in ("load", "report")] == [1, 2]
    assert len(Crawlers(store).runs("raw")) == 1

    # the history, through the API and the CLI
    token, _info = Tokens(store).create("viewer", "viewer")
    with TestClient(create_app(store, None)) as client:
        history = client.get("/workflows/daily/runs", headers={"Authorization": f"Bearer {token}"}).json()
    assert [(r["id"], r["state"]) for r in history] == [(shown["id"], "COMPLETED"), (run_id, "FAILED")]
    nodes = {n["node"]: n for n in history[0]["nodes"]}
    assert {k: n["state"] for k, n in nodes.items()} == {
        "crawler:raw": "SUCCEEDED",
        "job:load": "SUCCEEDED",
        "job:report": "SUCCEEDED",
    }
    assert nodes["job:load"]["runs"][0]["job_run_id"] == load_run.id  # carried over, not run again
    assert history[0]["run_properties"] == {"table": loaded, "batch_records": "500", "topic": raw}
    listed = runner.invoke(app, ["workflows", "runs", "daily", "--json", "--db", metadata_url])
    assert [r["state"] for r in json.loads(listed.output)] == ["COMPLETED", "FAILED"]
    text = runner.invoke(app, ["workflows", "run-show", str(run_id), "--db", metadata_url]).output
    assert "FAILED" in text and "crawler:raw -> trigger:daily-load [SUCCEEDED]" in text
