"""Triggers: what starts jobs and crawlers, in the spirit of AWS Glue's triggers.

=============  ==============================================================================
ON_DEMAND      fires when started (`stream-etl triggers start`, ``POST /triggers/{name}/start``)
SCHEDULED      fires on a cron schedule (5 fields; 6 fields = seconds first), UTC
CONDITIONAL    fires when job runs / crawler runs ended in given states, ANY or AND of them
EVENT          fires on new data: a Kafka topic's end offsets advanced by ``batch_size``
               records, or new S3 objects under a prefix; or ``batch_window_s`` after the
               first new data when fewer arrived
=============  ==============================================================================

A trigger's actions start jobs (:meth:`~stream_etl.control.jobs.Jobs.start`, with the
action's arguments) and crawlers (run by a scheduler, `stream-etl scheduler`). A trigger
may belong to a workflow (:mod:`stream_etl.control.workflows`).

Every firing is a row with a unique ``(trigger, slot)``: the cron slot, the ended runs that
met the conditions, the data offsets the event counted from. Two schedulers evaluating
the same trigger at once insert the same slot; one of them wins, so nothing fires twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stream_etl.control.catalog import check_name
from stream_etl.control.errors import AlreadyExists, InvalidState, NotFound
from stream_etl.control.jobs import Jobs
from stream_etl.control.models import Job, utcnow
from stream_etl.control.store import Store
from stream_etl.control.trigger_models import ActionRun, Trigger, TriggerFiring, Workflow, WorkflowRun
from stream_etl.errors import ConfigurationError

TriggerType = Literal["ON_DEMAND", "SCHEDULED", "CONDITIONAL", "EVENT"]
#: End states a condition can wait for (crawler runs end SUCCEEDED or FAILED).
EndState = Literal["SUCCEEDED", "FAILED", "TIMEOUT", "STOPPED"]
#: An action run still going: its job run queued or running, its crawler waiting or running.
ACTIVE_ACTIONS: frozenset[str] = frozenset({"STARTING", "WAITING", "RUNNING", "STOPPING"})
FAILED_ACTIONS: frozenset[str] = frozenset({"FAILED", "TIMEOUT", "STOPPED"})


class _Target(BaseModel):
    """Exactly one of ``job`` and ``crawler``."""

    job: str | None = None
    crawler: str | None = None

    @model_validator(mode="after")
    def _one(self) -> _Target:
        if (self.job is None) == (self.crawler is None):
            msg = "give exactly one of job and crawler"
            raise ValueError(msg)
        return self

    @property
    def kind(self) -> Literal["job", "crawler"]:
        return "job" if self.job is not None else "crawler"

    @property
    def target(self) -> str:
        return self.job or self.crawler or ""


class Condition(_Target):
    state: EndState = "SUCCEEDED"


class Predicate(BaseModel):
    logical: Literal["AND", "ANY"] = "AND"
    conditions: list[Condition] = Field(min_length=1)


class EventCondition(BaseModel):
    """New data that fires an EVENT trigger (Glue's EventBatchingCondition, for topics and prefixes)."""

    source: Literal["kafka", "s3"]
    topic: str | None = Field(default=None, description="kafka: the topic whose end offsets are watched")
    location: str | None = Field(default=None, description="s3: s3://bucket/prefix whose new objects are watched")
    connection: str | None = Field(
        default=None, description="kafka or s3 connection; default: the scheduler's STREAM_ETL_* environment"
    )
    batch_size: int = Field(default=1, ge=1, description="new records (kafka) or objects (s3) that fire at once")
    batch_window_s: float = Field(default=900.0, gt=0, description="fire this long after the first new data")

    @model_validator(mode="after")
    def _check(self) -> EventCondition:
        if self.source == "kafka" and not self.topic:
            msg = "a kafka event needs a topic"
            raise ValueError(msg)
        if self.source == "s3" and not (self.location or "").startswith("s3://"):
            msg = "an s3 event needs a location s3://bucket/prefix"
            raise ValueError(msg)
        return self


class Action(_Target):
    arguments: dict[str, str] = Field(default_factory=dict, description="job arguments over the job's own")


class TriggerSpec(BaseModel):
    name: str
    type: TriggerType
    schedule: str | None = Field(default=None, description="cron, UTC: 5 fields, or 6 with seconds first")
    predicate: Predicate | None = None
    event: EventCondition | None = None
    actions: list[Action] = Field(min_length=1)
    enabled: bool = True
    workflow: str | None = None
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> TriggerSpec:
        check_name("trigger", self.name)
        needs = {"SCHEDULED": "schedule", "CONDITIONAL": "predicate", "EVENT": "event"}
        for field in ("schedule", "predicate", "event"):
            given = getattr(self, field) is not None
            if given != (needs.get(self.type) == field):
                msg = f"a {self.type} trigger {'needs' if not given else 'takes no'} {field}"
                raise ValueError(msg)
        if self.schedule is not None:
            last_slot(self.schedule, utcnow())  # raises on a bad expression
        return self


class TriggerInfo(TriggerSpec):
    enabled_at: datetime
    created_at: datetime
    updated_at: datetime


class ActionRunInfo(BaseModel):
    """One fired action: its job run or crawler run and state (inside a workflow: a node's run)."""

    id: int
    trigger: str
    kind: Literal["job", "crawler"]
    name: str
    arguments: dict[str, str]
    state: str
    job_run_id: int | None
    crawler_run_id: int | None
    error: str | None
    created_at: datetime
    ended_at: datetime | None


class FiringInfo(BaseModel):
    id: int
    trigger: str
    slot: str
    reason: str
    workflow_run_id: int | None
    fired_at: datetime
    actions: list[ActionRunInfo]


def parse_trigger(values: dict[str, Any]) -> TriggerSpec:
    try:
        return TriggerSpec.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'trigger'}: {e['msg']}" for e in exc.errors())
        msg = f"trigger is not valid: {problems}"
        raise ConfigurationError(msg) from None


def last_slot(schedule: str, now: datetime) -> datetime:
    """The latest cron slot at or before ``now`` (UTC); 6 fields put seconds first."""
    from croniter import croniter

    try:
        # croniter's get_prev is strictly earlier than its start: start one second on.
        found: datetime = croniter(
            schedule, now.replace(microsecond=0) + timedelta(seconds=1), second_at_beginning=True
        ).get_prev(datetime)
    except (ValueError, KeyError) as exc:  # croniter's errors are ValueErrors
        msg = f"schedule {schedule!r} is not a cron expression: use 5 fields ('*/5 * * * *') or 6 with seconds first"
        raise ConfigurationError(msg) from exc
    return found


def satisfied(predicate: Predicate, ended: Mapping[tuple[str, str], tuple[str, str]]) -> list[list[str]]:
    """The groups of ended runs that fire a conditional trigger.

    ``ended`` maps ``(kind, name)`` to the (state, key) of that job's or crawler's latest ended
    run. AND: one group with every condition's run, when every condition is met. ANY: one
    group per met condition. A group's keys make the firing's slot, so it fires once per group.
    """
    met: list[str] = []
    for condition in predicate.conditions:
        found = ended.get((condition.kind, condition.target))
        if found is not None and found[0] == condition.state:
            met.append(found[1])
        elif predicate.logical == "AND":
            return []
    if predicate.logical == "AND":
        return [sorted(set(met))]
    return [[key] for key in dict.fromkeys(met)]


def trigger_info(row: Trigger) -> TriggerInfo:
    return TriggerInfo(
        name=row.name,
        type=row.type,  # type: ignore[arg-type]
        schedule=row.schedule,
        predicate=Predicate.model_validate(row.predicate) if row.predicate else None,
        event=EventCondition.model_validate(row.event) if row.event else None,
        actions=[Action.model_validate(a) for a in row.actions],
        enabled=row.enabled,
        workflow=row.workflow.name if row.workflow else None,
        description=row.description,
        enabled_at=row.enabled_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def action_status(row: ActionRun) -> tuple[str, str | None]:
    """(state, error): a job action's are its job run's, read live; a crawler action's are recorded
    by the scheduler that ran it."""
    from stream_etl.control.models import Run

    if row.job_run_id is not None:
        run = Session.object_session(row).get(Run, row.job_run_id)  # type: ignore[union-attr]
        if run is not None:
            return run.state, run.error or row.error
    return row.state, row.error


def action_state(row: ActionRun) -> str:
    return action_status(row)[0]


def action_info(row: ActionRun) -> ActionRunInfo:
    state, error = action_status(row)
    return ActionRunInfo(
        id=row.id,
        trigger=row.trigger,
        kind=row.kind,  # type: ignore[arg-type]
        name=row.name,
        arguments=dict(row.arguments),
        state=state,
        job_run_id=row.job_run_id,
        crawler_run_id=row.crawler_run_id,
        error=error,
        created_at=row.created_at,
        ended_at=row.ended_at,
    )


class Triggers:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.jobs = Jobs(store)

    def create(self, spec: TriggerSpec, *, replace: bool = False) -> TriggerInfo:
        try:
            with self.store.session() as session:
                jobs = {a.job for a in spec.actions if a.job} | {
                    c.job for c in (spec.predicate.conditions if spec.predicate else []) if c.job
                }
                known = set(session.scalars(select(Job.name).where(Job.name.in_(jobs))))
                if jobs - known:
                    msg = f"trigger {spec.name!r} names job(s) {sorted(jobs - known)} that do not exist: create them first"
                    raise ConfigurationError(msg)
                workflow = None
                if spec.workflow is not None:
                    workflow = session.scalars(select(Workflow).where(Workflow.name == spec.workflow)).first()
                    if workflow is None:
                        raise NotFound(kind="workflow", name=spec.workflow)
                row = session.scalars(select(Trigger).where(Trigger.name == spec.name)).first() if replace else None
                if row is None:
                    row = Trigger(name=spec.name, state={})
                    session.add(row)
                row.type, row.schedule, row.enabled, row.workflow = spec.type, spec.schedule, spec.enabled, workflow
                row.predicate = spec.predicate.model_dump() if spec.predicate else None
                row.event = spec.event.model_dump() if spec.event else None
                row.actions = [a.model_dump(exclude_none=True) for a in spec.actions]
                row.description, row.enabled_at, row.state = spec.description, utcnow(), {}
                session.flush()
                return trigger_info(row)
        except IntegrityError as exc:
            raise AlreadyExists(kind="trigger", name=spec.name) from exc

    def get(self, name: str) -> TriggerInfo:
        with self.store.session() as session:
            return trigger_info(self._trigger(session, name))

    def list_all(self, *, workflow: str | None = None) -> list[TriggerInfo]:
        with self.store.session() as session:
            query = select(Trigger).order_by(Trigger.name)
            if workflow is not None:
                query = query.join(Workflow).where(Workflow.name == workflow)
            return [trigger_info(r) for r in session.scalars(query)]

    def delete(self, name: str) -> None:
        with self.store.session() as session:
            session.delete(self._trigger(session, name))

    def set_enabled(self, name: str, enabled: bool) -> TriggerInfo:
        """Enable (cron slots and ended runs count from now on) or disable a trigger."""
        with self.store.session() as session:
            row = self._trigger(session, name)
            if enabled and not row.enabled:
                row.enabled_at, row.state = utcnow(), {}
            row.enabled = enabled
            session.flush()
            return trigger_info(row)

    def start(self, name: str, *, run_properties: Mapping[str, str] | None = None) -> FiringInfo:
        """Fire an ON_DEMAND trigger now (in a workflow: start a workflow run)."""
        with self.store.session() as session:
            row = self._trigger(session, name)
            if row.type != "ON_DEMAND":
                msg = f"trigger {name!r} is {row.type}: only ON_DEMAND triggers are started by hand"
                raise InvalidState(msg)
            in_workflow = row.workflow is not None
        fired = self.fire(
            name,
            slot=f"manual:{utcnow().isoformat()}",
            reason="started by hand",
            new_workflow_run=in_workflow,
            run_properties=run_properties,
        )
        assert fired is not None  # noqa: S101 - a timestamped manual slot is new
        return fired

    def firings(self, name: str, *, limit: int = 50) -> list[FiringInfo]:
        with self.store.session() as session:
            row = self._trigger(session, name)
            query = select(TriggerFiring).where(TriggerFiring.trigger_id == row.id)
            return [
                self._firing_info(session, f)
                for f in session.scalars(query.order_by(TriggerFiring.id.desc()).limit(limit))
            ]

    # firing -------------------------------------------------------------------------

    def fire(
        self,
        name: str,
        *,
        slot: str,
        reason: str,
        workflow_run_id: int | None = None,
        new_workflow_run: bool = False,
        run_properties: Mapping[str, str] | None = None,
        state: dict[str, Any] | None = None,
    ) -> FiringInfo | None:
        """Record a firing of ``slot`` and start the trigger's actions; None when this slot already fired.

        ``new_workflow_run``: the trigger starts its workflow; the run is created in the same
        transaction as the firing (so a scheduler never sees a workflow run without its first
        nodes). ``state``: the trigger's new event state, saved with the firing.
        """
        properties = dict(run_properties or {})
        try:
            with self.store.session() as session:
                row = session.scalars(select(Trigger).where(Trigger.name == name)).one()
                if new_workflow_run:
                    assert row.workflow is not None  # noqa: S101 - callers check
                    properties = {**row.workflow.default_run_properties, **properties}
                    run = WorkflowRun(workflow=row.workflow, state="RUNNING", run_properties=properties)
                    session.add(run)
                    session.flush()
                    workflow_run_id = run.id
                firing = TriggerFiring(trigger=row, slot=slot, reason=reason, workflow_run_id=workflow_run_id)
                session.add(firing)
                session.flush()
                if state is not None:
                    row.state = state
                for action in row.actions:
                    parsed = Action.model_validate(action)
                    session.add(
                        ActionRun(
                            firing_id=firing.id,
                            workflow_run_id=workflow_run_id,
                            trigger=name,
                            kind=parsed.kind,
                            name=parsed.target,
                            arguments={**properties, **parsed.arguments},
                            state="STARTING" if parsed.kind == "job" else "WAITING",
                        )
                    )
                firing_id = firing.id
        except IntegrityError:
            return None  # another scheduler fired this slot
        self.start_jobs(firing_id=firing_id)
        with self.store.session() as session:
            return self._firing_info(session, session.get_one(TriggerFiring, firing_id))

    def start_jobs(
        self, *, firing_id: int | None = None, workflow_run_id: int | None = None, older_than: datetime | None = None
    ) -> None:
        """Queue the job runs of STARTING job actions (of a firing, of a workflow run, or created before
        ``older_than``: a scheduler's recovery of firings whose process stopped before queuing them).

        Each action is claimed first (STARTING -> RUNNING, atomically), so no two processes queue one."""
        with self.store.session() as session:
            query = select(ActionRun).where(ActionRun.kind == "job", ActionRun.state == "STARTING")
            if firing_id is not None:
                query = query.where(ActionRun.firing_id == firing_id)
            if workflow_run_id is not None:
                query = query.where(ActionRun.workflow_run_id == workflow_run_id)
            if older_than is not None:
                query = query.where(ActionRun.created_at < older_than)
            pending = [(a.id, a.name, dict(a.arguments)) for a in session.scalars(query)]
        for action_id, job, arguments in pending:
            with self.store.session() as session:
                claimed = session.execute(
                    update(ActionRun)
                    .where(ActionRun.id == action_id, ActionRun.state == "STARTING")
                    .values(state="RUNNING")
                )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                continue
            values: dict[str, Any]
            try:
                run = self.jobs.start(job, arguments=arguments)
                values = {"job_run_id": run.id}
            except (NotFound, InvalidState) as exc:  # no such job, or it is still running: this action failed
                values = {"state": "FAILED", "error": str(exc), "ended_at": utcnow()}
            with self.store.session() as session:
                session.execute(update(ActionRun).where(ActionRun.id == action_id).values(**values))

    def fail_lost_jobs(self, older_than: datetime) -> None:
        """Job actions claimed before ``older_than`` whose job run was never queued (their process
        stopped in between): FAILED, so that their workflow runs can end."""
        with self.store.session() as session:
            session.execute(
                update(ActionRun)
                .where(
                    ActionRun.kind == "job",
                    ActionRun.state == "RUNNING",
                    ActionRun.job_run_id.is_(None),
                    ActionRun.created_at < older_than,
                )
                .values(state="FAILED", error="the process that fired it stopped before queuing the job run")
            )

    # lookups ------------------------------------------------------------------------

    @staticmethod
    def _firing_info(session: Session, row: TriggerFiring) -> FiringInfo:
        actions = session.scalars(select(ActionRun).where(ActionRun.firing_id == row.id).order_by(ActionRun.id))
        return FiringInfo(
            id=row.id,
            trigger=row.trigger.name,
            slot=row.slot,
            reason=row.reason,
            workflow_run_id=row.workflow_run_id,
            fired_at=row.fired_at,
            actions=[action_info(a) for a in actions],
        )

    @staticmethod
    def _trigger(session: Session, name: str) -> Trigger:
        row = session.scalars(select(Trigger).where(Trigger.name == name)).first()
        if row is None:
            raise NotFound(kind="trigger", name=name)
        return row
