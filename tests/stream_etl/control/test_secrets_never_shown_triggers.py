"""A connection's password appears in none of the crawler, trigger, workflow and scheduler surfaces:
a crawler whose target fails (its recorded error), their CLI output and API responses, and the log of
a real `stream-etl scheduler` process firing a trigger whose actions use that connection."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from stream_etl.cli import app
from stream_etl.control.api import create_app
from stream_etl.control.connections import Connections
from stream_etl.control.crawl_targets import Target
from stream_etl.control.crawlers import Crawlers, CrawlerSpec
from stream_etl.control.jobs import Jobs, parse_spec
from stream_etl.control.secrets import SecretBox
from stream_etl.control.store import Store
from stream_etl.control.tokens import Tokens
from stream_etl.control.trigger_specs import parse_trigger
from stream_etl.control.triggers import Triggers
from stream_etl.control.workflows import Workflows, WorkflowSpec
from tests.stream_etl.control.test_secrets_never_shown import PASSWORD

ROOT = Path(__file__).resolve().parents[3]
runner = CliRunner()


def test_crawler_trigger_workflow_and_scheduler_surfaces_never_show_a_password(store: Store, tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    box = SecretBox(key)
    url = store.engine.url.render_as_string(hide_password=False)
    env = {"STREAM_ETL_CONTROL_DB": url, "STREAM_ETL_CONTROL_KEY": key}
    Connections(store, box).create(
        "pg", "postgres", {"host": "127.0.0.1", "port": 1, "user": "etl", "password": PASSWORD}
    )
    target = Target(kind="postgres", path="public.%", connection="pg")  # port 1: the crawl fails
    crawlers = Crawlers(store, box)
    crawlers.create(CrawlerSpec(name="pgcrawl", database="lake", targets=[target]))
    failed = crawlers.run("pgcrawl")
    assert failed.state == "FAILED" and failed.error
    Jobs(store).create(parse_spec({"name": "leaky", "topology": str(tmp_path / "t.py"), "connections": ["pg"]}))
    every_second = {
        "type": "SCHEDULED",
        "schedule": "* * * * * *",
        "actions": [{"job": "leaky"}, {"crawler": "pgcrawl"}],
    }
    Triggers(store).create(parse_trigger({"name": "tick", **every_second}))
    Workflows(store).create(WorkflowSpec(name="flow"))
    Triggers(store).create(
        parse_trigger(
            {"name": "flow-start", "type": "ON_DEMAND", "workflow": "flow", "actions": [{"crawler": "pgcrawl"}]}
        )
    )
    Workflows(store).run("flow")

    # A real scheduler fires "tick" a few times: it queues job runs and runs the failing crawl.
    log = tmp_path / "scheduler.log"
    process_env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_ETL_")} | env
    process_env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "stream_etl", "scheduler", "--interval", "0.2"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=process_env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while len(crawlers.runs("pgcrawl")) < 3 or Jobs(store).list_runs(job="leaky") == []:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()[-3000:]
    scheduler_log = log.read_text(errors="replace")
    assert "crawler pgcrawl" in scheduler_log and "FAILED" in scheduler_log

    seen = [scheduler_log, *(r.model_dump_json() for r in crawlers.runs("pgcrawl"))]
    for args in (
        ("crawlers", "show", "pgcrawl"),
        ("crawlers", "list", "--json"),
        ("crawlers", "runs", "pgcrawl"),
        ("crawlers", "runs", "pgcrawl", "--json"),
        ("crawlers", "run", "pgcrawl", "--json"),
        ("triggers", "list", "--json"),
        ("triggers", "show", "tick"),
        ("workflows", "show", "flow"),
        ("workflows", "runs", "flow", "--json"),
    ):
        result = runner.invoke(app, list(args), env=env)
        seen.append(result.output)
    token, _info = Tokens(store).create("admin", "admin")
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(store, box)) as client:
        for path in ("/crawlers", "/crawlers/pgcrawl", "/crawlers/pgcrawl/runs", "/crawler-runs", "/triggers",
                     "/triggers/tick", "/triggers/tick/firings", "/workflows/flow", "/workflows/flow/runs"):  # fmt: skip
            response = client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.text)
            seen.append(response.text)
        response = client.post("/crawlers/pgcrawl/runs", headers=headers)
        assert response.status_code == 202
        run_url = f"/crawler-runs/{response.json()['id']}"
        while (response := client.get(run_url, headers=headers)).json()["state"] == "RUNNING":  # crawls in a thread
            time.sleep(0.05)
        assert response.json()["state"] == "FAILED"
        seen.append(response.text)

    leaks = [s for s in seen if PASSWORD in s]
    assert not leaks, leaks[0][:500]
    assert any("127.0.0.1" in s for s in seen)  # the errors say where the crawl failed
