"""REST routes of triggers and workflows (added to the app through ``ROUTE_MODULES``).

GETs need a viewer token; creating, deleting, enabling, starting, running, resuming and
stopping need an operator token.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel, Field

from stream_etl.control.api import Guards
from stream_etl.control.secrets import SecretBox
from stream_etl.control.store import Store
from stream_etl.control.trigger_specs import FiringInfo, TriggerInfo, TriggerSpec
from stream_etl.control.triggers import Triggers
from stream_etl.control.workflows import WorkflowInfo, WorkflowRunInfo, Workflows, WorkflowSpec


class RunRequest(BaseModel):
    run_properties: dict[str, str] = Field(default_factory=dict, description="over the workflow's defaults")


class ResumeRequest(BaseModel):
    nodes: list[str] | None = Field(default=None, description="job:NAME / crawler:NAME; default: the failed nodes")


def add_routes(app: FastAPI, store: Store, box: SecretBox | None, guards: Guards) -> None:
    triggers, workflows = Triggers(store), Workflows(store)
    viewer, operator = guards.viewer, guards.operator

    @app.get("/triggers", tags=["triggers"], dependencies=[viewer])
    def list_triggers(workflow: str | None = None) -> list[TriggerInfo]:
        return triggers.list_all(workflow=workflow)

    @app.post("/triggers", tags=["triggers"], dependencies=[operator], status_code=201)
    def create_trigger(body: TriggerSpec, replace: bool = False) -> TriggerInfo:
        return triggers.create(body, replace=replace)

    @app.get("/triggers/{name}", tags=["triggers"], dependencies=[viewer])
    def get_trigger(name: str) -> TriggerInfo:
        return triggers.get(name)

    @app.delete("/triggers/{name}", tags=["triggers"], dependencies=[operator], status_code=204)
    def delete_trigger(name: str) -> None:
        triggers.delete(name)

    @app.post("/triggers/{name}/enable", tags=["triggers"], dependencies=[operator])
    def enable_trigger(name: str) -> TriggerInfo:
        return triggers.set_enabled(name, True)

    @app.post("/triggers/{name}/disable", tags=["triggers"], dependencies=[operator])
    def disable_trigger(name: str) -> TriggerInfo:
        return triggers.set_enabled(name, False)

    @app.post("/triggers/{name}/start", tags=["triggers"], dependencies=[operator], status_code=201)
    def start_trigger(name: str, body: RunRequest | None = None) -> FiringInfo:
        return triggers.start(name, run_properties=body.run_properties if body else None)

    @app.get("/triggers/{name}/firings", tags=["triggers"], dependencies=[viewer])
    def trigger_firings(name: str, limit: int = 50) -> list[FiringInfo]:
        return triggers.firings(name, limit=limit)

    @app.get("/workflows", tags=["workflows"], dependencies=[viewer])
    def list_workflows() -> list[WorkflowInfo]:
        return workflows.list_all()

    @app.post("/workflows", tags=["workflows"], dependencies=[operator], status_code=201)
    def create_workflow(body: WorkflowSpec, replace: bool = False) -> WorkflowInfo:
        return workflows.create(body, replace=replace)

    @app.get("/workflows/{name}", tags=["workflows"], dependencies=[viewer])
    def get_workflow(name: str) -> WorkflowInfo:
        return workflows.get(name)

    @app.delete("/workflows/{name}", tags=["workflows"], dependencies=[operator], status_code=204)
    def delete_workflow(name: str) -> None:
        workflows.delete(name)

    @app.post("/workflows/{name}/runs", tags=["workflows"], dependencies=[operator], status_code=201)
    def run_workflow(name: str, body: RunRequest | None = None) -> WorkflowRunInfo:
        return workflows.run(name, run_properties=body.run_properties if body else None)

    @app.get("/workflows/{name}/runs", tags=["workflows"], dependencies=[viewer])
    def workflow_runs(name: str, limit: int = 50) -> list[WorkflowRunInfo]:
        return workflows.runs(name, limit=limit)

    @app.get("/workflow-runs/{run_id}", tags=["workflows"], dependencies=[viewer])
    def get_workflow_run(run_id: int) -> WorkflowRunInfo:
        return workflows.get_run(run_id)

    @app.post("/workflow-runs/{run_id}/resume", tags=["workflows"], dependencies=[operator], status_code=201)
    def resume_workflow_run(run_id: int, body: ResumeRequest | None = None) -> WorkflowRunInfo:
        return workflows.resume(run_id, nodes=body.nodes if body else None)

    @app.post("/workflow-runs/{run_id}/stop", tags=["workflows"], dependencies=[operator])
    def stop_workflow_run(run_id: int) -> WorkflowRunInfo:
        return workflows.stop(run_id)
