"""Triggers on SQLite and Postgres: cron slots fire once (also with two schedulers),
conditional ANY/AND over job run end states, on-demand starts. Job runs are ended the way a
supervisor ends them (``Jobs.update_run``); tests/e2e/test_triggers.py runs a real one."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from stream_etl.control.connections import Connections
from stream_etl.control.errors import AlreadyExists, InvalidState, NotFound
from stream_etl.control.jobs import Jobs, parse_spec
from stream_etl.control.models import utcnow
from stream_etl.control.scheduler import Scheduler
from stream_etl.control.store import Store
from stream_etl.control.trigger_specs import last_slot, parse_trigger
from stream_etl.control.triggers import Triggers
from stream_etl.errors import ConfigurationError


def _jobs(store: Store, *names: str) -> Jobs:
    jobs = Jobs(store)
    for name in names:
        jobs.create(parse_spec({"name": name, "topology": "topologies/orders.py", "mode": "until_caught_up"}))
    return jobs


def _scheduler(store: Store, name: str = "s1") -> Scheduler:
    return Scheduler(store, Connections(store, None), name=name)


def _end(jobs: Jobs, run_id: int, state: str) -> None:
    jobs.update_run(run_id, state=state)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"type": "SCHEDULED", "actions": [{"job": "a"}]}, "needs schedule"),
        ({"type": "SCHEDULED", "schedule": "every minute", "actions": [{"job": "a"}]}, "not a cron expression"),
        ({"type": "ON_DEMAND", "schedule": "* * * * *", "actions": [{"job": "a"}]}, "takes no schedule"),
        ({"type": "ON_DEMAND", "actions": [{"job": "a", "crawler": "c"}]}, "exactly one of job and crawler"),
        ({"type": "ON_DEMAND", "actions": []}, "at least 1"),
        ({"type": "CONDITIONAL", "predicate": {"conditions": []}, "actions": [{"job": "a"}]}, "at least 1"),
        ({"type": "EVENT", "event": {"source": "kafka"}, "actions": [{"job": "a"}]}, "needs a topic"),
        ({"type": "EVENT", "event": {"source": "s3", "location": "lake/x"}, "actions": [{"job": "a"}]}, "s3://"),
    ],
    ids=["no-schedule", "bad-cron", "schedule-on-demand", "job-and-crawler", "no-action", "no-condition",
         "kafka-no-topic", "s3-no-url"],
)  # fmt: skip
def test_a_trigger_spec_is_checked(values: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        parse_trigger({"name": "t", **values})


def test_cron_slots_minutes_and_seconds() -> None:
    now = datetime.fromisoformat("2026-11-21T10:05:00+00:00")
    assert last_slot("* * * * *", now) == now  # a slot exactly now is due
    assert last_slot("* * * * *", now - timedelta(microseconds=1)) == now - timedelta(minutes=1)
    assert last_slot("*/10 * * * * *", now + timedelta(seconds=9.9)) == now  # 6 fields: seconds first
    assert last_slot("*/10 * * * * *", now + timedelta(seconds=10)) == now + timedelta(seconds=10)


def test_triggers_are_created_listed_replaced_enabled_and_deleted(store: Store) -> None:
    _jobs(store, "a")
    triggers = Triggers(store)
    spec = parse_trigger({"name": "nightly", "type": "SCHEDULED", "schedule": "0 2 * * *", "actions": [{"job": "a"}]})
    created = triggers.create(spec)
    assert created.enabled and created.actions[0].job == "a" and created.workflow is None
    with pytest.raises(AlreadyExists):
        triggers.create(spec)
    with pytest.raises(ConfigurationError, match=r"job\(s\) \['nope'\] that do not exist"):
        triggers.create(parse_trigger({"name": "x", "type": "ON_DEMAND", "actions": [{"job": "nope"}]}))
    replaced = triggers.create(spec.model_copy(update={"schedule": "0 3 * * *"}), replace=True)
    assert replaced.schedule == "0 3 * * *"
    assert not triggers.set_enabled("nightly", False).enabled
    assert triggers.set_enabled("nightly", True).enabled_at > created.enabled_at
    assert [t.name for t in triggers.list_all()] == ["nightly"]
    with pytest.raises(InvalidState, match="only ON_DEMAND"):
        triggers.start("nightly")
    triggers.delete("nightly")
    with pytest.raises(NotFound):
        triggers.get("nightly")


def test_an_on_demand_trigger_starts_its_job_with_the_action_arguments(store: Store) -> None:
    jobs = _jobs(store, "a")
    triggers = Triggers(store)
    triggers.create(
        parse_trigger({"name": "go", "type": "ON_DEMAND", "actions": [{"job": "a", "arguments": {"topic": "t2"}}]})
    )
    fired = triggers.start("go")
    (action,) = fired.actions
    assert action.kind == "job" and action.job_run_id is not None and action.state == "WAITING"
    run = jobs.get_run(action.job_run_id)
    assert run.arguments == {"topic": "t2"}
    # the supervisor gets the job with the run's arguments over the job's
    claimed = jobs.claim("sup")
    assert claimed is not None and claimed[1].arguments == {"topic": "t2"}
    again = triggers.start("go")  # the job is still running: this action fails, nothing is queued
    assert again.actions[0].state == "FAILED" and "already has active run" in (again.actions[0].error or "")
    assert [f.id for f in triggers.firings("go")] == [again.id, fired.id]


def test_a_scheduled_trigger_fires_each_slot_once_even_with_two_schedulers(store: Store) -> None:
    jobs = _jobs(store, "a")
    triggers = Triggers(store)
    created = triggers.create(
        parse_trigger({"name": "every-minute", "type": "SCHEDULED", "schedule": "* * * * *", "actions": [{"job": "a"}]})
    )
    first, second = _scheduler(store, "s1"), _scheduler(store, "s2")
    slot = last_slot("* * * * *", created.enabled_at) + timedelta(minutes=1)
    assert first.tick(slot - timedelta(seconds=1)) == []  # the slot before the trigger existed never fires
    fired = first.tick(slot + timedelta(seconds=2))
    assert [f.slot for f in fired] == [slot.isoformat()]
    assert second.tick(slot + timedelta(seconds=3)) == []  # the other scheduler sees the slot fired
    assert first.tick(slot + timedelta(seconds=30)) == []
    run_id = fired[0].actions[0].job_run_id
    assert run_id is not None and jobs.get_run(run_id).state == "WAITING"
    _end(jobs, run_id, "SUCCEEDED")
    later = second.tick(slot + timedelta(minutes=3, seconds=1))  # missed slots fire once, not once each
    assert [f.slot for f in later] == [(slot + timedelta(minutes=3)).isoformat()]
    assert len(jobs.list_runs(job="a")) == 2
    triggers.set_enabled("every-minute", False)
    assert first.tick(slot + timedelta(minutes=5)) == []


def test_a_conditional_trigger_starts_a_job_after_another_succeeds(store: Store) -> None:
    jobs = _jobs(store, "first", "second")
    triggers = Triggers(store)
    triggers.create(
        parse_trigger(
            {
                "name": "then",
                "type": "CONDITIONAL",
                "predicate": {"conditions": [{"job": "first", "state": "SUCCEEDED"}]},
                "actions": [{"job": "second"}],
            }
        )
    )
    scheduler = _scheduler(store)
    run = jobs.start("first")
    assert scheduler.tick() == []  # still running
    _end(jobs, run.id, "FAILED")
    assert scheduler.tick() == []  # failed: not the awaited state
    run = jobs.start("first")
    _end(jobs, run.id, "SUCCEEDED")
    (fired,) = scheduler.tick()
    assert fired.slot == f"job-run:{run.id}" and fired.actions[0].name == "second"
    assert scheduler.tick() == [] and _scheduler(store, "s2").tick() == []  # that run fires once
    assert len(jobs.list_runs(job="second")) == 1


def test_conditional_and_waits_for_every_condition_and_any_for_one(store: Store) -> None:
    jobs = _jobs(store, "a", "b", "both", "either")
    triggers = Triggers(store)
    for name, logical, target in (("all", "AND", "both"), ("one", "ANY", "either")):
        triggers.create(
            parse_trigger(
                {
                    "name": name,
                    "type": "CONDITIONAL",
                    "predicate": {
                        "logical": logical,
                        "conditions": [{"job": "a", "state": "SUCCEEDED"}, {"job": "b", "state": "TIMEOUT"}],
                    },
                    "actions": [{"job": target}],
                }
            )
        )
    scheduler = _scheduler(store)
    run_a = jobs.start("a")
    _end(jobs, run_a.id, "SUCCEEDED")
    assert [f.trigger for f in scheduler.tick()] == ["one"]
    run_b = jobs.start("b")
    _end(jobs, run_b.id, "TIMEOUT")
    fired = {f.trigger: f for f in scheduler.tick()}
    assert sorted(fired) == ["all", "one"]
    assert fired["all"].slot == f"job-run:{run_a.id},job-run:{run_b.id}"
    assert fired["one"].slot == f"job-run:{run_b.id}"


def test_job_actions_left_by_a_stopped_process_are_queued_or_failed_by_a_scheduler(store: Store) -> None:
    from stream_etl.control.trigger_models import ActionRun

    jobs = _jobs(store, "a", "b")
    Triggers(store).create(parse_trigger({"name": "go", "type": "ON_DEMAND", "actions": [{"job": "a"}]}))
    old = utcnow() - timedelta(minutes=5)
    with store.session() as session:  # what a process that died right after committing a firing leaves
        session.add(
            ActionRun(trigger="go", kind="job", name="a", arguments={"k": "v"}, state="STARTING", created_at=old)
        )
        session.add(ActionRun(trigger="go", kind="job", name="b", arguments={}, state="RUNNING", created_at=old))
    scheduler = _scheduler(store)
    scheduler.tick(utcnow() - timedelta(minutes=4, seconds=30))  # not lost yet
    assert jobs.list_runs(job="a") == []
    scheduler.tick()
    (run,) = jobs.list_runs(job="a")
    assert run.arguments == {"k": "v"}
    with store.session() as session:
        states = {a.name: (a.state, a.job_run_id, a.error) for a in session.query(ActionRun)}
    assert states["a"] == ("RUNNING", run.id, None)
    assert states["b"][0] == "FAILED" and "stopped before queuing" in str(states["b"][2])
