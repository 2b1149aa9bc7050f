"""The trigger scheduler behind `stream-etl scheduler`: fires triggers, runs crawlers, moves workflows.

Every ``interval_s`` (one *tick*) it looks at every enabled trigger:

- SCHEDULED: the latest cron slot at or before now, when it is not older than the trigger
  (or its last enabling) and has not fired yet (slots missed while no scheduler ran fire
  once, not once each);
- CONDITIONAL (outside workflows): the latest ended run of each watched job and crawler,
  if it ended after the trigger was enabled; ANY or AND of the conditions;
- EVENT: new data since the trigger's baseline; it fires on ``batch_size`` new records or
  objects, or ``batch_window_s`` after it first saw new data;

then advances every RUNNING workflow run (:meth:`Workflows.advance`), and hands crawler
actions waiting for a scheduler to a thread pool (crawls are short). Job actions need no
scheduler: firing queues their runs for a worker supervisor (`stream-etl worker`).

Several schedulers may run against one store: a firing is a row unique on (trigger, slot),
so a slot fires once whoever sees it first; a crawler action is claimed with an atomic
``UPDATE ... WHERE state = 'WAITING'``. SIGTERM/SIGINT stop it after the crawls under way.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from stream_etl.control.connections import Connections
from stream_etl.control.jobs import FINISHED
from stream_etl.control.models import Job, Run, utcnow
from stream_etl.control.store import Store
from stream_etl.control.trigger_models import ActionRun, Trigger
from stream_etl.control.trigger_specs import EventCondition, FiringInfo, Predicate, last_slot, satisfied
from stream_etl.control.triggers import Triggers
from stream_etl.control.workflows import Workflows
from stream_etl.settings import Settings

log = logging.getLogger(__name__)

#: Job actions still not queued this long after their firing were left by a process that stopped.
LOST_AFTER_S = 60.0
#: A crawler run's end states.
_CRAWLER_ENDED = frozenset({"SUCCEEDED", "FAILED", "STOPPED", "CANCELLED"})


class Scheduler:
    def __init__(
        self,
        store: Store,
        connections: Connections,
        *,
        name: str | None = None,
        interval_s: float = 5.0,
        crawler_threads: int = 4,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.connections = connections
        self.triggers = Triggers(store)
        self.workflows = Workflows(store)
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.interval_s = interval_s
        self.crawler_threads = crawler_threads
        #: ``STREAM_ETL_*`` settings for event triggers and crawler targets without a connection.
        self.environ = dict(os.environ if environ is None else environ)
        self.settings = Settings.from_environment(self.environ)
        self.clock = clock
        self.stopping = threading.Event()
        self._pool = ThreadPoolExecutor(crawler_threads, thread_name_prefix="crawler")
        self._crawls: dict[int, Future[None]] = {}

    def serve(self) -> None:
        """Until :meth:`stop`: tick every ``interval_s``."""
        log.info("scheduler %s started (every %g s)", self.name, self.interval_s)
        try:
            while not self.stopping.is_set():
                try:
                    self.tick()
                except Exception:  # the store unreachable for a moment: look again next tick
                    log.exception("scheduler %s: a tick failed; retrying", self.name)
                self.stopping.wait(self.interval_s)
        finally:
            self.close()
        log.info("scheduler %s stopped", self.name)

    def stop(self) -> None:
        self.stopping.set()

    def close(self) -> None:
        """Wait for the crawls under way, then stop the pool."""
        self._pool.shutdown(wait=True)

    def drain(self, timeout_s: float = 60.0) -> None:
        """Wait for the crawls under way (tests, and before a last tick)."""
        wait(list(self._crawls.values()), timeout=timeout_s)

    def tick(self, now: datetime | None = None) -> list[FiringInfo]:
        now = now or self.clock()
        fired: list[FiringInfo] = []
        with self.store.session() as session:
            enabled = [
                (t.name, t.type, t.workflow_id is not None)
                for t in session.scalars(select(Trigger).where(Trigger.enabled.is_(True)).order_by(Trigger.id))
            ]
        for name, kind, in_workflow in enabled:
            try:
                if kind == "SCHEDULED":
                    fired += self._scheduled(name, in_workflow, now)
                elif kind == "EVENT":
                    fired += self._event(name, in_workflow, now)
                elif kind == "CONDITIONAL" and not in_workflow:
                    fired += self._conditional(name)
            except Exception:  # one broken trigger (a bad connection, a broker down) must not stop the others
                log.exception("trigger %s: evaluation failed; trying again next tick", name)
        lost = now - timedelta(seconds=LOST_AFTER_S)
        self.triggers.start_jobs(older_than=lost)
        self.triggers.fail_lost_jobs(lost)
        for run_id in self.workflows.running():
            try:
                fired += self.workflows.advance(run_id)
            except Exception:
                log.exception("workflow run %d: advancing it failed; trying again next tick", run_id)
        for firing in fired:
            actions = ", ".join(f"{a.kind} {a.name} ({a.state})" for a in firing.actions)
            log.info("trigger %s fired [%s]: %s -> %s", firing.trigger, firing.slot, firing.reason, actions)
        self._crawl()
        return fired

    # trigger types --------------------------------------------------------------------

    def _scheduled(self, name: str, in_workflow: bool, now: datetime) -> list[FiringInfo]:
        with self.store.session() as session:
            row = session.scalars(select(Trigger).where(Trigger.name == name)).one()
            schedule, since = str(row.schedule), row.enabled_at
        slot = last_slot(schedule, now)
        if slot < since:  # a slot before the trigger (or its enabling) never fires
            return []
        fired = self.triggers.fire(
            name, slot=slot.isoformat(), reason=f"schedule {schedule!r}", new_workflow_run=in_workflow
        )
        return [fired] if fired else []

    def _conditional(self, name: str) -> list[FiringInfo]:
        with self.store.session() as session:
            row = session.scalars(select(Trigger).where(Trigger.name == name)).one()
            predicate, since = Predicate.model_validate(row.predicate), row.enabled_at
            ended: dict[tuple[str, str], tuple[str, str]] = {}
            for condition in predicate.conditions:
                if condition.job is not None:
                    run = session.scalars(
                        select(Run)
                        .join(Job)
                        .where(Job.name == condition.job, Run.state.in_(FINISHED), Run.ended_at >= since)
                        .order_by(Run.ended_at.desc(), Run.id.desc())
                        .limit(1)
                    ).first()
                    if run is not None:
                        ended[("job", condition.job)] = (run.state, f"job-run:{run.id}")
        for condition in predicate.conditions:
            if condition.crawler is not None:
                crawl = self._last_crawl(condition.crawler)
                if crawl is not None and crawl.state in _CRAWLER_ENDED and crawl.ended_at and crawl.ended_at >= since:
                    ended[("crawler", condition.crawler)] = (crawl.state, f"crawler-run:{crawl.id}")
        fired = []
        for keys in satisfied(predicate, ended):
            firing = self.triggers.fire(name, slot=",".join(keys), reason=f"{predicate.logical} of {', '.join(keys)}")
            if firing is not None:
                fired.append(firing)
        return fired

    def _event(self, name: str, in_workflow: bool, now: datetime) -> list[FiringInfo]:
        from stream_etl.control.trigger_events import new_data, slot_of

        with self.store.session() as session:
            row = session.scalars(select(Trigger).where(Trigger.name == name)).one()
            event, state = EventCondition.model_validate(row.event), dict(row.state)
        baseline = state.get("baseline")
        new, level = new_data(event, baseline, self.connections, self.settings)
        if baseline is None or new <= 0:
            if baseline is None or level != baseline:  # first look, or the topic shrank (recreated)
                self._save_state(name, {"baseline": level})
            return []
        first = datetime.fromisoformat(state["first_new_at"]) if state.get("first_new_at") else now
        if new < event.batch_size and now - first < timedelta(seconds=event.batch_window_s):
            if not state.get("first_new_at"):
                self._save_state(name, {**state, "first_new_at": now.isoformat()})
            return []
        what = (
            "record(s) on topic " + str(event.topic)
            if event.source == "kafka"
            else "object(s) under " + str(event.location)
        )
        fired = self.triggers.fire(
            name,
            slot=slot_of(baseline),
            reason=f"{new} new {what}" + ("" if new >= event.batch_size else f" after {event.batch_window_s:g} s"),
            new_workflow_run=in_workflow,
            state={"baseline": level},
        )
        return [fired] if fired else []

    def _save_state(self, name: str, state: dict[str, Any]) -> None:
        with self.store.session() as session:
            session.execute(update(Trigger).where(Trigger.name == name).values(state=state))

    # crawlers ---------------------------------------------------------------------------

    def _last_crawl(self, crawler: str) -> Any:
        from stream_etl.control.crawlers import Crawlers

        return Crawlers(self.store, self.connections.box, environ=self.environ).last_run(crawler)

    def _crawl(self) -> None:
        """Claim crawler actions waiting for a scheduler and run them in the pool."""
        self._crawls = {k: f for k, f in self._crawls.items() if not f.done()}
        while len(self._crawls) < self.crawler_threads and not self.stopping.is_set():
            with self.store.session() as session:
                waiting = session.scalars(
                    select(ActionRun.id).where(ActionRun.kind == "crawler", ActionRun.state == "WAITING").limit(1)
                ).first()
                if waiting is None:
                    return
                claimed = session.execute(
                    update(ActionRun)
                    .where(ActionRun.id == waiting, ActionRun.state == "WAITING")
                    .values(state="RUNNING")
                )
                action = session.get_one(ActionRun, waiting)
                name, arguments = action.name, dict(action.arguments)
            if claimed.rowcount == 1:  # type: ignore[attr-defined]
                self._crawls[waiting] = self._pool.submit(self._run_crawler, waiting, name, arguments)

    def _run_crawler(self, action_id: int, crawler: str, arguments: dict[str, str]) -> None:
        values: dict[str, Any]
        try:
            from stream_etl.control.crawlers import Crawlers

            info = Crawlers(self.store, self.connections.box, environ=self.environ).run(
                crawler, run_properties=arguments
            )
            values = {"state": info.state, "crawler_run_id": info.id, "error": info.error}
        except Exception as exc:  # a crawler that cannot run (not found, unreachable source) failed its action
            values = {"state": "FAILED", "error": f"{type(exc).__name__}: {exc}"}
        log.info("crawler %s (action %d): %s", crawler, action_id, values["state"])
        with self.store.session() as session:
            session.execute(update(ActionRun).where(ActionRun.id == action_id).values(ended_at=utcnow(), **values))
