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
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stream_etl.control.errors import InvalidState, NotFound
from stream_etl.control.jobs import Jobs
from stream_etl.control.models import Job, utcnow
from stream_etl.control.store import Store, by_name, named_row
from stream_etl.control.trigger_models import ActionRun, Trigger, TriggerFiring, Workflow, WorkflowRun
from stream_etl.control.trigger_specs import (
    Action,
    ActionRunInfo,
    EventCondition,
    FiringInfo,
    Predicate,
    TriggerInfo,
    TriggerSpec,
)
from stream_etl.errors import ConfigurationError


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
        with self.store.creating("trigger", spec.name) as session:
            jobs = {a.job for a in spec.actions if a.job} | {
                c.job for c in (spec.predicate.conditions if spec.predicate else []) if c.job
            }
            known = set(session.scalars(select(Job.name).where(Job.name.in_(jobs))))
            if jobs - known:
                msg = f"trigger {spec.name!r} names job(s) {sorted(jobs - known)} that do not exist: create them first"
                raise ConfigurationError(msg)
            workflow = None
            if spec.workflow is not None:
                workflow = by_name(session, Workflow, spec.workflow, kind="workflow")
            row = named_row(session, Trigger, spec.name, replace=replace)
            row.type, row.schedule, row.enabled, row.workflow = spec.type, spec.schedule, spec.enabled, workflow
            row.predicate = spec.predicate.model_dump() if spec.predicate else None
            row.event = spec.event.model_dump() if spec.event else None
            row.actions = [a.model_dump(exclude_none=True) for a in spec.actions]
            row.description, row.enabled_at, row.state = spec.description, utcnow(), {}
            session.flush()
            return trigger_info(row)

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
        return by_name(session, Trigger, name, kind="trigger")
