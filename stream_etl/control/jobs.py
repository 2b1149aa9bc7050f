"""Jobs and their runs.

A job is a topology module, its arguments, a worker count, a run mode
(``continuous`` or ``until_caught_up``), max retries, a timeout and the connections
its workers get. A job of a maintenance kind (``compact``, ``vacuum``, ``checkpoint``)
runs ``stream-etl table KIND`` on the Delta table named by its argument ``table``
instead, with its other arguments as that command's options. Starting a job queues a run (``WAITING``); a worker supervisor
claims it and moves it through its states::

    WAITING -> STARTING -> RUNNING -> SUCCEEDED | FAILED | TIMEOUT
                               \\-> STOPPING -> STOPPED       (stop requested)
    WAITING -> STOPPED                                        (stopped before a supervisor claimed it)

``attempts`` counts worker process starts beyond the first of each worker, plus one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from stream_etl.context import check_app_id
from stream_etl.control.catalog import check_name
from stream_etl.control.errors import InvalidState, validated
from stream_etl.control.models import Connection, Job, Run, utcnow
from stream_etl.control.store import Store, by_id, by_name, named_row
from stream_etl.errors import ConfigurationError

JobKind = Literal["topology", "compact", "vacuum", "checkpoint"]

#: The arguments of each maintenance kind besides ``table`` (`stream-etl table KIND --help`),
#: with their type: ``int``, ``bool`` (``true``/``false``) or ``str``.
MAINTENANCE_ARGUMENTS: dict[str, dict[str, type]] = {
    "compact": {"target_size": int, "z_order": str, "min_files": int, "attempts": int},
    "vacuum": {"retention_hours": int, "enforce_retention": bool, "dry_run": bool, "full": bool},
    "checkpoint": {"cleanup_logs": bool},
}

RunState = Literal["WAITING", "STARTING", "RUNNING", "STOPPING", "STOPPED", "SUCCEEDED", "FAILED", "TIMEOUT"]
ACTIVE: frozenset[str] = frozenset({"WAITING", "STARTING", "RUNNING", "STOPPING"})
FINISHED: frozenset[str] = frozenset({"STOPPED", "SUCCEEDED", "FAILED", "TIMEOUT"})


class JobSpec(BaseModel):
    name: str
    kind: JobKind = "topology"
    topology: str = Field(default="", description="path/to/module.py[:attribute], as for `stream-etl run`")
    arguments: dict[str, str] = Field(default_factory=dict)
    workers: int = Field(default=1, ge=1, le=256)
    mode: Literal["continuous", "until_caught_up"] = "continuous"
    max_retries: int = Field(default=3, ge=0)
    timeout_s: float | None = Field(default=None, gt=0)
    connections: list[str] = Field(default_factory=list)
    app_id: str | None = Field(default=None, description="stored positions' key; default: the job name")
    catalog_database: str | None = Field(
        default=None, description="register the job's Delta tables and schema versions in this catalog database"
    )

    @model_validator(mode="after")
    def _check(self) -> JobSpec:
        check_name("job", self.name)
        check_app_id(self.app_id or self.name)
        if self.catalog_database:
            check_name("database", self.catalog_database)
        if self.kind == "topology":
            if not self.topology:
                msg = "a topology job needs a topology (path/to/module.py[:attribute])"
                raise ValueError(msg)
        else:
            _check_maintenance(self)
        return self


def _check_maintenance(spec: JobSpec) -> None:
    known = MAINTENANCE_ARGUMENTS[spec.kind]
    if not spec.arguments.get("table"):
        msg = f"a {spec.kind} job needs the argument table=<Delta table URI>"
        raise ValueError(msg)
    unknown = sorted(set(spec.arguments) - set(known) - {"table"})
    if unknown:
        msg = f"a {spec.kind} job takes the arguments table, {', '.join(known)}; not {', '.join(unknown)}"
        raise ValueError(msg)
    for key, value in spec.arguments.items():
        kind = known.get(key, str)
        if (kind is bool and value not in ("true", "false")) or (kind is int and not value.isdigit()):
            msg = f"argument {key} of a {spec.kind} job must be {'true or false' if kind is bool else 'an integer'}"
            raise ValueError(msg)
    if spec.workers != 1:
        msg = f"a {spec.kind} job runs one process: workers must be 1"
        raise ValueError(msg)


class JobInfo(JobSpec):
    created_at: datetime
    updated_at: datetime


class RunInfo(BaseModel):
    id: int
    job: str
    state: RunState
    attempts: int
    error: str | None
    metrics: dict[str, Any]
    supervisor: str | None
    pids: list[str]
    stop_requested: bool
    arguments: dict[str, str] = Field(default_factory=dict, description="over the job's arguments")
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


def parse_spec(values: dict[str, Any]) -> JobSpec:
    return validated(JobSpec, values, "job")


def _job_info(row: Job) -> JobInfo:
    return JobInfo(
        name=row.name,
        kind=row.kind,  # type: ignore[arg-type]
        topology=row.topology,
        arguments=dict(row.arguments),
        workers=row.workers,
        mode=row.mode,  # type: ignore[arg-type]
        max_retries=row.max_retries,
        timeout_s=row.timeout_s,
        connections=list(row.connections),
        app_id=row.app_id,
        catalog_database=row.catalog_database,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _run_info(row: Run) -> RunInfo:
    return RunInfo(
        id=row.id,
        job=row.job.name,
        state=row.state,  # type: ignore[arg-type]
        attempts=row.attempts,
        error=row.error,
        metrics=dict(row.metrics),
        supervisor=row.supervisor,
        pids=list(row.pids),
        stop_requested=row.stop_requested,
        arguments=dict(row.arguments or {}),
        created_at=row.created_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
    )


class Jobs:
    def __init__(self, store: Store) -> None:
        self.store = store

    # jobs -------------------------------------------------------------------------

    def create(self, spec: JobSpec, *, replace: bool = False) -> JobInfo:
        with self.store.creating("job", spec.name) as session:
            known = set(session.scalars(select(Connection.name).where(Connection.name.in_(spec.connections))))
            missing = [c for c in spec.connections if c not in known]
            if missing:
                msg = f"job {spec.name!r} names connection(s) {missing} that do not exist: create them first"
                raise ConfigurationError(msg)
            row = named_row(session, Job, spec.name, replace=replace)
            row.kind = spec.kind
            row.topology = spec.topology
            row.arguments = dict(spec.arguments)
            row.workers = spec.workers
            row.mode = spec.mode
            row.max_retries = spec.max_retries
            row.timeout_s = spec.timeout_s
            row.connections = list(spec.connections)
            row.app_id = spec.app_id or spec.name
            row.catalog_database = spec.catalog_database
            session.flush()
            return _job_info(row)

    def get(self, name: str) -> JobInfo:
        with self.store.session() as session:
            return _job_info(self._job(session, name))

    def list_all(self) -> list[JobInfo]:
        with self.store.session() as session:
            return [_job_info(r) for r in session.scalars(select(Job).order_by(Job.name))]

    def delete(self, name: str) -> None:
        with self.store.session() as session:
            row = self._job(session, name)
            if any(r.state in ACTIVE for r in row.runs):
                msg = f"job {name!r} has an active run: stop it before deleting the job"
                raise InvalidState(msg)
            session.delete(row)

    # runs -------------------------------------------------------------------------

    def start(self, name: str, *, arguments: Mapping[str, str] | None = None) -> RunInfo:
        """Queue a run; a supervisor (`stream-etl worker`) claims it. One active run per job.
        ``arguments`` go to this run's workers over the job's own (triggers, workflow run properties)."""
        with self.store.session() as session:
            job = self._job(session, name)
            active = [r.id for r in job.runs if r.state in ACTIVE]
            if active:
                msg = f"job {name!r} already has active run {active[0]}: stop it or wait for it to end"
                raise InvalidState(msg)
            row = Run(
                job=job,
                state="WAITING",
                attempts=0,
                metrics={},
                pids=[],
                stop_requested=False,
                arguments={k: str(v) for k, v in (arguments or {}).items()},
            )
            session.add(row)
            session.flush()
            return _run_info(row)

    def stop(self, run_id: int) -> RunInfo:
        """Ask for a graceful stop: a waiting run stops at once, a running one via its supervisor."""
        with self.store.session() as session:
            row = self._run(session, run_id)
            if row.state in FINISHED:
                msg = f"run {run_id} already ended ({row.state})"
                raise InvalidState(msg)
            row.stop_requested = True
            if row.state == "WAITING":
                row.state, row.ended_at = "STOPPED", utcnow()
            elif row.state in ("STARTING", "RUNNING"):
                row.state = "STOPPING"
            session.flush()
            return _run_info(row)

    def get_run(self, run_id: int) -> RunInfo:
        with self.store.session() as session:
            return _run_info(self._run(session, run_id))

    def list_runs(self, *, job: str | None = None, state: str | None = None, limit: int = 100) -> list[RunInfo]:
        with self.store.session() as session:
            query = select(Run).order_by(Run.id.desc()).limit(limit)
            if job is not None:
                query = query.where(Run.job_id == self._job(session, job).id)
            if state is not None:
                query = query.where(Run.state == state.upper())
            return [_run_info(r) for r in session.scalars(query)]

    # for supervisors ----------------------------------------------------------------

    def claim(self, supervisor: str) -> tuple[RunInfo, JobInfo] | None:
        """Take the oldest waiting run (atomically: two supervisors never claim one run)."""
        with self.store.session() as session:
            waiting = session.scalars(select(Run.id).where(Run.state == "WAITING").order_by(Run.id).limit(10)).all()
            for run_id in waiting:
                claimed = session.execute(
                    update(Run)
                    .where(Run.id == run_id, Run.state == "WAITING")
                    .values(state="STARTING", supervisor=supervisor, started_at=utcnow(), heartbeat_at=utcnow())
                )
                if claimed.rowcount == 1:  # type: ignore[attr-defined]
                    row = self._run(session, run_id)
                    session.refresh(row)
                    job = _job_info(row.job)
                    job.arguments = {**job.arguments, **(row.arguments or {})}  # the run's over the job's
                    return _run_info(row), job
        return None

    def update_run(self, run_id: int, **values: Any) -> RunInfo:
        """Set fields of a run; a finished state also sets ``ended_at``."""
        with self.store.session() as session:
            row = self._run(session, run_id)
            for key, value in values.items():
                setattr(row, key, value)
            if values.get("state") in FINISHED:
                row.ended_at = utcnow()
            row.heartbeat_at = utcnow()
            session.flush()
            return _run_info(row)

    def heartbeat(self, run_ids: list[int]) -> None:
        """A supervisor's sign of life for the runs it owns."""
        if run_ids:
            with self.store.session() as session:
                session.execute(update(Run).where(Run.id.in_(run_ids)).values(heartbeat_at=utcnow()))

    def requeue_stale(self, older_than_s: float) -> list[int]:
        """Runs whose supervisor stopped answering (no heartbeat for ``older_than_s``): back to
        WAITING for another supervisor, or STOPPED when a stop was requested. Their workers died
        with that supervisor (they get SIGTERM when it dies); were one still alive, the sink's
        commit fencing keeps the restarted run exactly-once."""
        cutoff = utcnow() - timedelta(seconds=older_than_s)
        requeued: list[int] = []
        with self.store.session() as session:
            stale = session.scalars(
                select(Run).where(Run.state.in_(("STARTING", "RUNNING", "STOPPING")), Run.heartbeat_at < cutoff)
            ).all()
            for row in stale:
                previous = row.supervisor
                row.supervisor, row.pids = None, []
                if row.stop_requested:
                    row.state, row.ended_at = "STOPPED", utcnow()
                else:
                    row.state = "WAITING"
                    requeued.append(row.id)
                row.error = f"supervisor {previous} stopped answering; run {'requeued' if row.state == 'WAITING' else 'stopped'}"
        return requeued

    # lookups ------------------------------------------------------------------------

    @staticmethod
    def _job(session: Session, name: str) -> Job:
        return by_name(session, Job, name, kind="job")

    @staticmethod
    def _run(session: Session, run_id: int) -> Run:
        return by_id(session, Run, run_id, kind="run")
