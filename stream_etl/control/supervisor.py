"""The worker supervisor behind `stream-etl worker`: claims runs, runs their workers.

One supervisor process runs any number of claimed runs (up to ``max_runs``). For
each run it starts the job's ``workers`` ``stream-etl run`` processes with the
job's connections in their environment (one consumer group: scale-out is the
group's), then, every ``poll_interval_s``:

- a worker that exits 0 is done (until-caught-up: it caught up); its ``--json``
  summary is kept. When every worker is done the run SUCCEEDED, with the summed
  stats as its metrics.
- a worker that exits otherwise (a crash, SIGKILL) is restarted after a backoff
  (``backoff_s * 2**(restarts-1)``, at most ``max_backoff_s``) while the run has
  restarts left (the job's ``max_retries``, counted over the run); then the run
  FAILED with the worker's error. Restarting is safe: positions live in the sink's
  commits, so a restarted worker resumes exactly after the last commit.
- a stop request (``stream-etl runs stop``) sends SIGTERM (workers finish their
  batch and commit), then SIGKILL after ``stop_grace_s``: STOPPED.
- past the job's timeout the same stop gives TIMEOUT.

When the supervisor itself is stopped (SIGTERM/SIGINT), it stops its workers
gracefully and puts their runs back to WAITING for another supervisor. A supervisor
that dies (SIGKILL, lost machine) stops heart-beating: its workers get SIGTERM from
the kernel (Linux), and after ``stale_after_s`` any other supervisor queues its runs
again (:meth:`~stream_etl.control.jobs.Jobs.requeue_stale`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from stream_etl.control.connections import Connections, mask_text
from stream_etl.control.hook import DATABASE_VARIABLE, STORE_VARIABLE
from stream_etl.control.jobs import MAINTENANCE_ARGUMENTS, JobInfo, Jobs, RunInfo
from stream_etl.control.store import Store

log = logging.getLogger(__name__)

_SUMMED = ("records_in", "written", "filtered", "dead_lettered", "already_committed", "batches", "commits", "conflicts")


def worker_command(job: JobInfo, python: str) -> list[str]:
    if job.kind != "topology":
        return maintenance_command(job, python)
    command = [python, "-m", "stream_etl", "run", job.topology, "--app-id", job.app_id or job.name, "--json"]
    for key, value in job.arguments.items():
        command += ["--arg", f"{key}={value}"]
    if job.mode == "until_caught_up":
        command.append("--until-caught-up")
    return command


def maintenance_command(job: JobInfo, python: str) -> list[str]:
    """`stream-etl table KIND TABLE --json` with the job's other arguments as options
    (``z_order=a,b`` -> ``--z-order a,b``; ``dry_run=true`` -> ``--dry-run``, ``false`` -> ``--no-dry-run``)."""
    arguments = dict(job.arguments)
    command = [python, "-m", "stream_etl", "table", job.kind, arguments.pop("table"), "--json"]
    for key, value in arguments.items():
        option = key.replace("_", "-")
        if MAINTENANCE_ARGUMENTS[job.kind].get(key) is bool:
            command.append(f"--{option}" if value == "true" else f"--no-{option}")
        else:
            command += [f"--{option}", value]
    return command


@dataclass
class _Slot:
    """One of a run's workers, across its restarts."""

    index: int
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    out_path: Path | None = None
    started: int = 0
    restart_at: float | None = None
    done: bool = False
    summary: dict[str, Any] | None = None


@dataclass
class _ActiveRun:
    run: RunInfo
    job: JobInfo
    env: dict[str, str]
    secrets: list[str]
    directory: Path
    slots: list[_Slot]
    started_at: float = field(default_factory=time.monotonic)
    restarts: int = 0
    failures: list[str] = field(default_factory=list)
    ending: str | None = None  # the state to record once every worker has exited
    error: str | None = None
    kill_at: float | None = None


class Supervisor:
    def __init__(
        self,
        store: Store,
        connections: Connections,
        *,
        name: str | None = None,
        log_dir: Path,
        poll_interval_s: float = 1.0,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        stop_grace_s: float = 30.0,
        max_runs: int = 8,
        heartbeat_s: float = 5.0,
        stale_after_s: float = 60.0,
        python: str = sys.executable,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.jobs = Jobs(store)
        self.connections = connections
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.log_dir = log_dir
        self.poll_interval_s = poll_interval_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.stop_grace_s = stop_grace_s
        self.max_runs = max_runs
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self._last_heartbeat = 0.0
        self.python = python
        self.environment = dict(os.environ if environment is None else environment)
        self.active: dict[int, _ActiveRun] = {}
        self.stopping = threading.Event()

    # the loop -----------------------------------------------------------------------

    def serve(self) -> None:
        """Until :meth:`stop` (or SIGTERM/SIGINT through the CLI): claim, watch, restart."""
        log.info("worker supervisor %s started (logs in %s)", self.name, self.log_dir)
        try:
            while not self.stopping.is_set():
                try:
                    self.tick()
                except Exception:  # the store unreachable for a moment: the workers run on, look again
                    log.exception("supervisor %s: a look at the store or the workers failed; retrying", self.name)
                self.stopping.wait(self.poll_interval_s)
        finally:
            self._hand_back()
        log.info("worker supervisor %s stopped", self.name)

    def stop(self) -> None:
        self.stopping.set()

    def tick(self) -> None:
        if time.monotonic() - self._last_heartbeat >= self.heartbeat_s:
            self._last_heartbeat = time.monotonic()
            self.jobs.heartbeat(list(self.active))
            for run_id in self.jobs.requeue_stale(self.stale_after_s):
                log.warning("run %d: its supervisor stopped answering; queued again", run_id)
        while len(self.active) < self.max_runs and not self.stopping.is_set():
            claimed = self.jobs.claim(self.name)
            if claimed is None:
                break
            self._start(*claimed)
        for run_id in list(self.active):
            self._watch(self.active[run_id])

    # one run ------------------------------------------------------------------------

    def _start(self, run: RunInfo, job: JobInfo) -> None:
        log.info("run %d of job %s claimed: %d worker(s), %s", run.id, job.name, job.workers, job.mode)
        try:
            extra = self.connections.environment(job.connections)
            secrets = [v for k, v in extra.items() if _is_secret(k)]
        except Exception as exc:  # bad connection or key: the run cannot start
            self.jobs.update_run(run.id, state="FAILED", error=f"cannot prepare the workers' connections: {exc}")
            return
        env = {**self.environment, **extra}
        if job.catalog_database:
            env[DATABASE_VARIABLE] = job.catalog_database
            env[STORE_VARIABLE] = self.store.engine.url.render_as_string(hide_password=False)
        directory = self.log_dir / f"run-{run.id}"
        directory.mkdir(parents=True, exist_ok=True)
        active = _ActiveRun(run, job, env, secrets, directory, [_Slot(i) for i in range(job.workers)])
        self.active[run.id] = active
        for slot in active.slots:
            self._spawn(active, slot)
        self._save(active, state="RUNNING", attempts=1)

    def _spawn(self, active: _ActiveRun, slot: _Slot) -> None:
        slot.started += 1
        stem = active.directory / f"worker-{slot.index}-attempt-{slot.started}"
        slot.log_path, slot.out_path = stem.with_suffix(".log"), stem.with_suffix(".out")
        with slot.log_path.open("wb") as errors, slot.out_path.open("wb") as output:
            slot.process = subprocess.Popen(  # noqa: S603 - our own CLI, arguments from the job
                worker_command(active.job, self.python),
                env=active.env,
                stdout=output,
                stderr=errors,
                preexec_fn=_stop_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
            )
        slot.restart_at = None
        log.info("run %d: worker %d started (pid %d)", active.run.id, slot.index, slot.process.pid)

    def _watch(self, active: _ActiveRun) -> None:
        now = time.monotonic()
        if active.ending is None:
            current = self.jobs.get_run(active.run.id)
            if current.stop_requested:
                self._end(active, "STOPPED", None)
            elif active.job.timeout_s is not None and now - active.started_at > active.job.timeout_s:
                self._end(active, "TIMEOUT", f"the run exceeded the job's timeout of {active.job.timeout_s:g} s")
        for slot in active.slots:
            process = slot.process
            if process is None:
                if slot.restart_at is not None and now >= slot.restart_at and active.ending is None:
                    self._spawn(active, slot)
                    self._save(active)
                continue
            code = process.poll()
            if code is None:
                continue
            slot.process = None
            if code == 0 or active.ending is not None:
                slot.done = code == 0 or slot.done
                slot.summary = _read_summary(slot.out_path) or slot.summary
                continue
            error = self._describe_crash(active, slot, code)
            active.failures.append(error)
            if active.restarts >= active.job.max_retries:
                log.warning("run %d: %s; no retries left", active.run.id, error)
                self._end(active, "FAILED", error)
                continue
            active.restarts += 1
            delay = min(self.backoff_s * 2 ** (active.restarts - 1), self.max_backoff_s)
            slot.restart_at = now + delay
            log.warning(
                "run %d: %s; restarting in %.1f s (retry %d of %d)",
                active.run.id,
                error,
                delay,
                active.restarts,
                active.job.max_retries,
            )
            self._save(active, attempts=1 + active.restarts, error=error)
        self._finish_if_over(active, now)

    def _end(self, active: _ActiveRun, state: str, error: str | None) -> None:
        """Stop every worker (SIGTERM, then SIGKILL after the grace period); record ``state`` once they exited."""
        active.ending, active.error = state, error
        active.kill_at = time.monotonic() + self.stop_grace_s
        for slot in active.slots:
            slot.restart_at = None
            if slot.process is not None and slot.process.poll() is None:
                slot.process.send_signal(signal.SIGTERM)
        if state == "STOPPED":
            self._save(active, state="STOPPING")

    def _finish_if_over(self, active: _ActiveRun, now: float) -> None:
        running = [s for s in active.slots if s.process is not None]
        if active.ending is not None:
            if running and active.kill_at is not None and now >= active.kill_at:
                for slot in running:
                    slot.process.kill()  # type: ignore[union-attr]
            if running:
                return
            self._close(active, active.ending, active.error)
        elif all(s.done for s in active.slots):
            self._close(active, "SUCCEEDED", None)

    def _close(self, active: _ActiveRun, state: str, error: str | None) -> None:
        summaries = [s.summary for s in active.slots if s.summary is not None]
        if active.job.kind == "topology":
            metrics = _sum_summaries(summaries)
        else:  # a maintenance command's --json result: files removed/added, bytes, versions
            metrics = {"maintenance": summaries[0]} if summaries else {}
        if active.failures:
            metrics["worker_failures"] = active.failures
        self._save(active, state=state, error=error, metrics=metrics, pids=[])
        del self.active[active.run.id]
        log.info("run %d of job %s: %s", active.run.id, active.job.name, state)

    def _describe_crash(self, active: _ActiveRun, slot: _Slot, code: int) -> str:
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        tail = _error_line(slot.log_path, only_errors=code < 0)  # a killed worker's last log line says nothing
        text = f"worker {slot.index} {how}" + (f": {tail}" if tail else "")
        return mask_text(text, active.secrets)

    def _save(self, active: _ActiveRun, **values: Any) -> None:
        values.setdefault("pids", [str(s.process.pid) for s in active.slots if s.process is not None])
        active.run = self.jobs.update_run(active.run.id, **values)

    def _hand_back(self) -> None:
        """Supervisor shutdown: stop the workers gracefully, queue their runs again."""
        for active in list(self.active.values()):
            for slot in active.slots:
                if slot.process is not None and slot.process.poll() is None:
                    slot.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + self.stop_grace_s
            for slot in active.slots:
                if slot.process is None:
                    continue
                try:
                    slot.process.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    slot.process.kill()
                    slot.process.wait()
            state = "STOPPED" if active.ending == "STOPPED" else "WAITING"
            self.jobs.update_run(active.run.id, state=state, pids=[], supervisor=None)
            log.info("run %d handed back (%s)", active.run.id, state)
        self.active.clear()


def _stop_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the kernel sends the worker SIGTERM (finish the batch, commit, exit) when its
    supervisor dies, so a supervisor killed with SIGKILL leaves no orphan writing on."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _is_secret(variable: str) -> bool:
    return any(word in variable for word in ("SECRET", "PASSWORD", "TOKEN", "OPTIONS"))


def _read_summary(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.exists():
        return None
    try:
        found: dict[str, Any] = json.loads(path.read_text())
    except ValueError:
        return None
    return found


def _error_line(path: Path | None, *, only_errors: bool, limit: int = 2000) -> str:
    """The worker's ``error: ...`` line, else (unless ``only_errors``) the last lines of its log."""
    if path is None or not path.exists():
        return ""
    handle: IO[str]
    with path.open(errors="replace") as handle:
        lines = [line.rstrip() for line in handle if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    text = errors[-1] if errors else ("" if only_errors else " | ".join(lines[-3:]))
    return text[-limit:]


def _sum_summaries(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    if not summaries:
        return {}
    stats = {key: sum(int(s.get("stats", {}).get(key, 0)) for s in summaries) for key in _SUMMED}
    sinks: dict[str, Any] = {}
    for summary in summaries:
        sinks.update(summary.get("sinks", {}))
    return {"workers_reporting": len(summaries), "stats": stats, "sinks": sinks}
