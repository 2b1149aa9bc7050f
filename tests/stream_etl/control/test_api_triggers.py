"""Trigger and workflow routes: viewer reads, operator acts; a workflow's run history."""

from __future__ import annotations

from fastapi.testclient import TestClient

from stream_etl.control.connections import Connections
from stream_etl.control.jobs import Jobs
from stream_etl.control.scheduler import Scheduler
from stream_etl.control.store import Store
from tests.stream_etl.control.test_api import client, tokens  # noqa: F401 - fixtures


def test_trigger_routes_need_the_operator_role_to_act(client: TestClient, tokens: dict[str, dict[str, str]]) -> None:  # noqa: F811
    job = {"name": "load", "topology": "topologies/orders.py"}
    assert client.post("/jobs", json=job, headers=tokens["operator"]).status_code == 201
    trigger = {"name": "now", "type": "ON_DEMAND", "actions": [{"job": "load", "arguments": {"topic": "t"}}]}
    assert client.post("/triggers", json=trigger, headers=tokens["viewer"]).status_code == 403
    assert client.post("/triggers", json=trigger, headers=tokens["operator"]).status_code == 201
    assert client.post("/triggers", json=trigger, headers=tokens["operator"]).status_code == 409
    bad = {**trigger, "name": "bad", "type": "SCHEDULED", "schedule": "nope"}
    assert client.post("/triggers", json=bad, headers=tokens["operator"]).status_code == 400
    assert client.get("/triggers/now", headers=tokens["viewer"]).json()["actions"][0]["arguments"] == {"topic": "t"}
    assert client.post("/triggers/now/start", headers=tokens["viewer"]).status_code == 403
    started = client.post("/triggers/now/start", headers=tokens["operator"])
    assert started.status_code == 201 and started.json()["actions"][0]["state"] == "WAITING"
    assert len(client.get("/triggers/now/firings", headers=tokens["viewer"]).json()) == 1
    assert client.post("/triggers/now/disable", headers=tokens["operator"]).json()["enabled"] is False
    assert client.post("/triggers/now/enable", headers=tokens["operator"]).json()["enabled"] is True
    assert client.delete("/triggers/now", headers=tokens["operator"]).status_code == 204
    assert client.get("/triggers/now", headers=tokens["viewer"]).status_code == 404


def test_workflow_routes_run_resume_and_history(
    client: TestClient,  # noqa: F811
    tokens: dict[str, dict[str, str]],  # noqa: F811
    store: Store,
) -> None:
    op, view = tokens["operator"], tokens["viewer"]
    for name in ("load", "report"):
        assert client.post("/jobs", json={"name": name, "topology": "t.py"}, headers=op).status_code == 201
    workflow = {"name": "daily", "default_run_properties": {"day": "1"}}
    assert client.post("/workflows", json=workflow, headers=view).status_code == 403
    assert client.post("/workflows", json=workflow, headers=op).status_code == 201
    start = {"name": "go", "type": "ON_DEMAND", "workflow": "daily", "actions": [{"job": "load"}]}
    then = {
        "name": "next",
        "type": "CONDITIONAL",
        "workflow": "daily",
        "predicate": {"conditions": [{"job": "load", "state": "SUCCEEDED"}]},
        "actions": [{"job": "report"}],
    }
    for body in (start, then):
        assert client.post("/triggers", json=body, headers=op).status_code == 201
    assert len(client.get("/workflows/daily", headers=view).json()["graph"]["edges"]) == 3
    run = client.post("/workflows/daily/runs", json={"run_properties": {"day": "2"}}, headers=op)
    assert run.status_code == 201 and run.json()["run_properties"] == {"day": "2"}
    run_id = run.json()["id"]
    jobs, scheduler = Jobs(store), Scheduler(store, Connections(store, None))
    jobs.update_run(jobs.list_runs(job="load")[0].id, state="FAILED")
    scheduler.tick()
    failed = client.get(f"/workflow-runs/{run_id}", headers=view).json()
    assert failed["state"] == "FAILED" and failed["nodes"][0]["state"] == "FAILED"
    assert client.post(f"/workflow-runs/{run_id}/resume", headers=view).status_code == 403
    resumed = client.post(f"/workflow-runs/{run_id}/resume", headers=op)
    assert resumed.status_code == 201 and resumed.json()["previous_run_id"] == run_id
    assert client.post(f"/workflow-runs/{run_id}/resume", headers=op).status_code == 201  # each resume: a new run
    history = client.get("/workflows/daily/runs", headers=view).json()
    assert [r["state"] for r in history] == ["RUNNING", "RUNNING", "FAILED"]
    stopped = client.post(f"/workflow-runs/{history[0]['id']}/stop", headers=op)
    assert stopped.json()["state"] == "STOPPED"
    assert client.post(f"/workflow-runs/{history[0]['id']}/stop", headers=op).status_code == 409
    assert client.get("/workflow-runs/999", headers=view).status_code == 404
