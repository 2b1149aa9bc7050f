"""Workflows: DAGs of triggers, jobs and crawlers sharing run properties (AWS Glue workflows).

A workflow's triggers make its graph: one **start trigger** (ON_DEMAND, SCHEDULED or EVENT)
and CONDITIONAL triggers whose conditions name jobs and crawlers of the workflow. A
**workflow run** starts when the start trigger fires (or `stream-etl workflows run`), with
the workflow's default run properties under the ones given; every action of the run gets
them (jobs as arguments under the action's own, crawlers as run properties).

Inside a run, conditional triggers look only at that run's nodes: a scheduler fires a
trigger once per group of node runs that meets its predicate. A run ends when nothing is
running and nothing more fires: COMPLETED, or FAILED when a node's latest run failed (FAILED,
TIMEOUT or STOPPED). :meth:`Workflows.resume` starts a new run (``previous_run_id``) that
carries the old run's results over and runs again only the failed nodes (or the ones named)
and what follows them::

    RUNNING -> COMPLETED | FAILED | STOPPED        FAILED/STOPPED --resume--> a new RUNNING run
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from stream_etl.control.catalog import check_name
from stream_etl.control.errors import InvalidState
from stream_etl.control.jobs import Jobs
from stream_etl.control.models import utcnow
from stream_etl.control.store import Store, by_id, by_name, named_row
from stream_etl.control.trigger_models import ActionRun, TriggerFiring, Workflow, WorkflowRun
from stream_etl.control.trigger_specs import (
    ACTIVE_ACTIONS,
    FAILED_ACTIONS,
    ActionRunInfo,
    FiringInfo,
    Predicate,
    TriggerType,
    satisfied,
)
from stream_etl.control.triggers import Triggers, action_info, action_state, action_status, trigger_info
from stream_etl.errors import ConfigurationError

WorkflowRunState = Literal["RUNNING", "COMPLETED", "FAILED", "STOPPED"]


class WorkflowSpec(BaseModel):
    name: str
    description: str = ""
    default_run_properties: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> WorkflowSpec:
        check_name("workflow", self.name)
        return self


class GraphNode(BaseModel):
    id: str = Field(description="trigger:NAME, job:NAME or crawler:NAME")
    type: Literal["trigger", "job", "crawler"]
    name: str
    trigger_type: TriggerType | None = None


class GraphEdge(BaseModel):
    source: str
    destination: str
    state: str | None = Field(default=None, description="condition edges: the end state the trigger waits for")


class WorkflowGraph(BaseModel):
    nodes: list[GraphNode]
    edges: list[GraphEdge]


class WorkflowInfo(WorkflowSpec):
    created_at: datetime
    updated_at: datetime
    graph: WorkflowGraph


class NodeRuns(BaseModel):
    """A job or crawler node in one workflow run: its latest state and every run of it."""

    node: str
    state: str = Field(description="the latest run's state; NOT_RUN when it never ran in this workflow run")
    runs: list[ActionRunInfo]


class WorkflowRunInfo(BaseModel):
    id: int
    workflow: str
    state: WorkflowRunState
    run_properties: dict[str, str]
    previous_run_id: int | None
    error: str | None
    started_at: datetime
    ended_at: datetime | None
    statistics: dict[str, int]
    nodes: list[NodeRuns]
    graph: WorkflowGraph


def _graph(workflow: Workflow) -> WorkflowGraph:
    nodes: dict[str, GraphNode] = {}
    edges: list[GraphEdge] = []
    for trigger in sorted(workflow.triggers, key=lambda t: (t.type == "CONDITIONAL", t.id)):
        info = trigger_info(trigger)
        tid = f"trigger:{info.name}"
        nodes[tid] = GraphNode(id=tid, type="trigger", name=info.name, trigger_type=info.type)
        for condition in info.predicate.conditions if info.predicate else []:
            nid = f"{condition.kind}:{condition.target}"
            nodes.setdefault(nid, GraphNode(id=nid, type=condition.kind, name=condition.target))
            edges.append(GraphEdge(source=nid, destination=tid, state=condition.state))
        for action in info.actions:
            nid = f"{action.kind}:{action.target}"
            nodes.setdefault(nid, GraphNode(id=nid, type=action.kind, name=action.target))
            edges.append(GraphEdge(source=tid, destination=nid))
    return WorkflowGraph(nodes=list(nodes.values()), edges=edges)


def _latest(session: Session, run_id: int) -> dict[str, ActionRun]:
    """Each node's latest action run in a workflow run."""
    query = select(ActionRun).where(ActionRun.workflow_run_id == run_id).order_by(ActionRun.id)
    return {f"{a.kind}:{a.name}": a for a in session.scalars(query)}


class Workflows:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.triggers = Triggers(store)

    def create(self, spec: WorkflowSpec, *, replace: bool = False) -> WorkflowInfo:
        with self.store.creating("workflow", spec.name) as session:
            row = named_row(session, Workflow, spec.name, replace=replace)
            row.description, row.default_run_properties = spec.description, dict(spec.default_run_properties)
            session.flush()
            return self._info(row)

    def get(self, name: str) -> WorkflowInfo:
        with self.store.session() as session:
            return self._info(self._workflow(session, name))

    def list_all(self) -> list[WorkflowInfo]:
        with self.store.session() as session:
            return [self._info(r) for r in session.scalars(select(Workflow).order_by(Workflow.name))]

    def delete(self, name: str) -> None:
        """Delete a workflow with its triggers and run history (refused while a run is RUNNING)."""
        with self.store.session() as session:
            row = self._workflow(session, name)
            running = session.scalars(
                select(WorkflowRun.id).where(WorkflowRun.workflow_id == row.id, WorkflowRun.state == "RUNNING")
            ).first()
            if running is not None:
                msg = f"workflow {name!r} has RUNNING run {running}: stop it before deleting the workflow"
                raise InvalidState(msg)
            session.delete(row)

    # runs ---------------------------------------------------------------------------

    def run(self, name: str, *, run_properties: Mapping[str, str] | None = None) -> WorkflowRunInfo:
        """Start a workflow run now: fire its start trigger with these run properties over the defaults."""
        with self.store.session() as session:
            starts = [t.name for t in self._workflow(session, name).triggers if t.type != "CONDITIONAL"]
        if len(starts) != 1:
            msg = f"workflow {name!r} has {len(starts)} start triggers: it needs one ON_DEMAND, SCHEDULED or EVENT trigger"
            raise InvalidState(msg)
        fired = self.triggers.fire(
            starts[0],
            slot=f"manual:{utcnow().isoformat()}",
            reason="workflow run started by hand",
            new_workflow_run=True,
            run_properties=run_properties,
        )
        assert fired is not None and fired.workflow_run_id is not None  # noqa: S101 - a new manual slot
        return self.get_run(fired.workflow_run_id)

    def get_run(self, run_id: int) -> WorkflowRunInfo:
        with self.store.session() as session:
            return self._run_info(session, self._run(session, run_id))

    def runs(self, name: str, *, limit: int = 50) -> list[WorkflowRunInfo]:
        with self.store.session() as session:
            workflow = self._workflow(session, name)
            query = select(WorkflowRun).where(WorkflowRun.workflow_id == workflow.id)
            return [
                self._run_info(session, r) for r in session.scalars(query.order_by(WorkflowRun.id.desc()).limit(limit))
            ]

    def stop(self, run_id: int) -> WorkflowRunInfo:
        """Stop a RUNNING workflow run: its job runs get a graceful stop, its waiting crawlers are dropped."""
        with self.store.session() as session:
            row = self._run(session, run_id)
            if row.state != "RUNNING":
                msg = f"workflow run {run_id} already ended ({row.state})"
                raise InvalidState(msg)
            row.state, row.ended_at, row.error = "STOPPED", utcnow(), "stopped by request"
            active = [a for a in _latest(session, run_id).values() if action_state(a) in ACTIVE_ACTIONS]
            for action in active:
                if action.job_run_id is None:
                    action.state, action.ended_at = "STOPPED", utcnow()
            job_runs = [a.job_run_id for a in active if a.job_run_id is not None]
        jobs = Jobs(self.store)
        for job_run in job_runs:
            try:
                jobs.stop(job_run)
            except InvalidState:  # it ended meanwhile
                pass
        return self.get_run(run_id)

    def resume(self, run_id: int, *, nodes: list[str] | None = None) -> WorkflowRunInfo:
        """A new run that carries ``run_id``'s results over and re-runs its failed nodes (or ``nodes``,
        as ``job:NAME`` / ``crawler:NAME``) and, as their conditions are met again, what follows them."""
        with self.store.session() as session:
            old = self._run(session, run_id)
            if old.state not in ("FAILED", "STOPPED"):
                msg = f"workflow run {run_id} is {old.state}: only a FAILED or STOPPED run can be resumed"
                raise InvalidState(msg)
            latest = _latest(session, run_id)
            chosen = list(nodes) if nodes else [n for n, a in latest.items() if action_state(a) in FAILED_ACTIONS]
            unknown = [n for n in chosen if n not in latest]
            if unknown or not chosen:
                msg = (
                    f"workflow run {run_id}: nothing to resume"
                    if not chosen
                    else (f"node(s) {unknown} did not run in workflow run {run_id}: name nodes from {sorted(latest)}")
                )
                raise ConfigurationError(msg)
            new = WorkflowRun(
                workflow=old.workflow, state="RUNNING", run_properties=dict(old.run_properties), previous_run_id=old.id
            )
            session.add(new)
            session.flush()
            for node, action in latest.items():
                again = node in chosen
                session.add(
                    ActionRun(
                        workflow_run_id=new.id,
                        trigger=action.trigger,
                        kind=action.kind,
                        name=action.name,
                        arguments=dict(action.arguments),
                        state=("STARTING" if action.kind == "job" else "WAITING") if again else action_state(action),
                        job_run_id=None if again else action.job_run_id,
                        crawler_run_id=None if again else action.crawler_run_id,
                        origin_id=None if again else (action.origin_id or action.id),
                        error=None if again else action_status(action)[1],
                        ended_at=None if again else action.ended_at,
                    )
                )
            # The old run's conditional firings stay fired: their slots name node runs carried over.
            prefix = f"wr:{old.id}:"
            for firing in session.scalars(select(TriggerFiring).where(TriggerFiring.workflow_run_id == old.id)):
                if firing.slot.startswith(prefix):
                    session.add(
                        TriggerFiring(
                            trigger_id=firing.trigger_id,
                            slot=f"wr:{new.id}:{firing.slot[len(prefix) :]}",
                            workflow_run_id=new.id,
                            reason=f"carried over from workflow run {old.id}",
                            fired_at=firing.fired_at,
                        )
                    )
            new_id = new.id
        self.triggers.start_jobs(workflow_run_id=new_id)
        return self.get_run(new_id)

    # for schedulers -----------------------------------------------------------------

    def running(self) -> list[int]:
        with self.store.session() as session:
            return list(session.scalars(select(WorkflowRun.id).where(WorkflowRun.state == "RUNNING")))

    def advance(self, run_id: int) -> list[FiringInfo]:
        """Fire the run's conditional triggers that its ended nodes satisfy; end the run when nothing
        runs and nothing fired."""
        with self.store.session() as session:
            row = self._run(session, run_id)
            if row.state != "RUNNING":
                return []
            ended: dict[tuple[str, str], tuple[str, str]] = {}
            active = False
            for action in _latest(session, run_id).values():
                state = action_state(action)
                if state in ACTIVE_ACTIONS:
                    active = True
                else:
                    ended[(action.kind, action.name)] = (state, f"{action.kind}:{action.origin_id or action.id}")
            conditional = [
                (t.name, Predicate.model_validate(t.predicate))
                for t in row.workflow.triggers
                if t.type == "CONDITIONAL" and t.enabled and t.predicate
            ]
            properties = dict(row.run_properties)
        fired: list[FiringInfo] = []
        for name, predicate in conditional:
            for keys in satisfied(predicate, ended):
                firing = self.triggers.fire(
                    name,
                    slot=f"wr:{run_id}:{','.join(keys)}",
                    reason=f"{predicate.logical} of {', '.join(keys)} in workflow run {run_id}",
                    workflow_run_id=run_id,
                    run_properties=properties,
                )
                if firing is not None:
                    fired.append(firing)
        # Only a run whose nodes had all ended when the predicates were evaluated can be over: a node
        # that ends after that evaluation may satisfy a predicate, which the next tick fires.
        if not fired and not active:
            self._end_if_over(run_id)
        return fired

    def _end_if_over(self, run_id: int) -> None:
        with self.store.session() as session:
            states = {node: action_status(a) for node, a in _latest(session, run_id).items()}
            if any(state in ACTIVE_ACTIONS for state, _error in states.values()):
                return
            failed = {node: (state, error) for node, (state, error) in states.items() if state in FAILED_ACTIONS}
            error = "; ".join(f"{node} {state}" + (f": {e}" if e else "") for node, (state, e) in failed.items())
            session.execute(
                update(WorkflowRun)
                .where(WorkflowRun.id == run_id, WorkflowRun.state == "RUNNING")
                .values(state="FAILED" if failed else "COMPLETED", error=error or None, ended_at=utcnow())
            )

    # lookups ------------------------------------------------------------------------

    @staticmethod
    def _info(row: Workflow) -> WorkflowInfo:
        return WorkflowInfo(
            name=row.name,
            description=row.description,
            default_run_properties=dict(row.default_run_properties),
            created_at=row.created_at,
            updated_at=row.updated_at,
            graph=_graph(row),
        )

    @staticmethod
    def _run_info(session: Session, row: WorkflowRun) -> WorkflowRunInfo:
        graph = _graph(row.workflow)
        query = select(ActionRun).where(ActionRun.workflow_run_id == row.id).order_by(ActionRun.id)
        runs: dict[str, list[ActionRunInfo]] = {n.id: [] for n in graph.nodes if n.type != "trigger"}
        for action in session.scalars(query):
            runs.setdefault(f"{action.kind}:{action.name}", []).append(action_info(action))
        nodes = [NodeRuns(node=n, state=r[-1].state if r else "NOT_RUN", runs=r) for n, r in runs.items()]
        statistics = {"total": len(nodes)}
        for node in nodes:
            statistics[node.state.lower()] = statistics.get(node.state.lower(), 0) + 1
        return WorkflowRunInfo(
            id=row.id,
            workflow=row.workflow.name,
            state=row.state,  # type: ignore[arg-type]
            run_properties=dict(row.run_properties),
            previous_run_id=row.previous_run_id,
            error=row.error,
            started_at=row.started_at,
            ended_at=row.ended_at,
            statistics=statistics,
            nodes=nodes,
            graph=graph,
        )

    @staticmethod
    def _workflow(session: Session, name: str) -> Workflow:
        return by_name(session, Workflow, name, kind="workflow")

    @staticmethod
    def _run(session: Session, run_id: int) -> WorkflowRun:
        return by_id(session, WorkflowRun, run_id, kind="workflow run")
