"""Workflows on SQLite and Postgres: run properties reach the jobs, conditional triggers scoped
to the workflow run, COMPLETED / FAILED, and resume re-running only failed nodes and what
follows. Job runs end the way a supervisor ends them (``Jobs.update_run``)."""

from __future__ import annotations

import pytest

from stream_etl.control.connections import Connections
from stream_etl.control.errors import InvalidState
from stream_etl.control.jobs import Jobs, parse_spec
from stream_etl.control.scheduler import Scheduler
from stream_etl.control.store import Store
from stream_etl.control.trigger_specs import parse_trigger
from stream_etl.control.triggers import Triggers
from stream_etl.control.workflows import WorkflowRunInfo, Workflows, WorkflowSpec
from stream_etl.errors import ConfigurationError


def chain(store: Store, name: str, *jobs: str) -> Workflows:
    """A workflow: an on-demand start trigger runs ``jobs[0]``, each next job after the previous succeeded."""
    job_store = Jobs(store)
    for job in jobs:
        job_store.create(parse_spec({"name": job, "topology": "topologies/orders.py", "mode": "until_caught_up"}))
    workflows, triggers = Workflows(store), Triggers(store)
    workflows.create(WorkflowSpec(name=name, default_run_properties={"table": "s3://lake/x", "day": "1"}))
    triggers.create(
        parse_trigger({"name": f"{name}-start", "type": "ON_DEMAND", "workflow": name, "actions": [{"job": jobs[0]}]})
    )
    for before, after in zip(jobs, jobs[1:], strict=False):
        triggers.create(
            parse_trigger(
                {
                    "name": f"{name}-after-{before}",
                    "type": "CONDITIONAL",
                    "workflow": name,
                    "predicate": {"conditions": [{"job": before}]},
                    "actions": [{"job": after, "arguments": {"batch_records": "10"}}],
                }
            )
        )
    return workflows


def _node(run: WorkflowRunInfo, node: str) -> tuple[str, list[int | None]]:
    found = next(n for n in run.nodes if n.node == node)
    return found.state, [r.job_run_id for r in found.runs]


def _finish(store: Store, workflows: Workflows, run_id: int, node: str, state: str) -> None:
    _state, job_runs = _node(workflows.get_run(run_id), node)
    assert job_runs[-1] is not None
    Jobs(store).update_run(job_runs[-1], state=state)


def test_a_workflow_runs_its_jobs_in_order_with_the_run_properties(store: Store) -> None:
    workflows = chain(store, "daily", "load", "report")
    info = workflows.get("daily")
    assert [n.id for n in info.graph.nodes] == [
        "trigger:daily-start",
        "job:load",
        "trigger:daily-after-load",
        "job:report",
    ]
    assert {(e.source, e.destination) for e in info.graph.edges} == {
        ("trigger:daily-start", "job:load"),
        ("job:load", "trigger:daily-after-load"),
        ("trigger:daily-after-load", "job:report"),
    }
    scheduler = Scheduler(store, Connections(store, None))
    run = workflows.run("daily", run_properties={"day": "2"})
    assert run.state == "RUNNING" and run.run_properties == {"table": "s3://lake/x", "day": "2"}
    state, (load_run,) = _node(run, "job:load")
    assert state == "WAITING" and load_run is not None
    assert Jobs(store).get_run(load_run).arguments == {"table": "s3://lake/x", "day": "2"}
    assert _node(run, "job:report") == ("NOT_RUN", [])

    assert scheduler.tick() == []  # load still running: nothing fires, the run goes on
    _finish(store, workflows, run.id, "job:load", "SUCCEEDED")
    (fired,) = scheduler.tick()
    assert fired.trigger == "daily-after-load" and fired.workflow_run_id == run.id
    report_run = fired.actions[0].job_run_id
    assert report_run is not None
    assert Jobs(store).get_run(report_run).arguments == {"table": "s3://lake/x", "day": "2", "batch_records": "10"}
    assert workflows.get_run(run.id).state == "RUNNING"
    _finish(store, workflows, run.id, "job:report", "SUCCEEDED")
    assert scheduler.tick() == []
    done = workflows.get_run(run.id)
    assert done.state == "COMPLETED" and done.ended_at is not None and done.error is None
    assert done.statistics == {"total": 2, "succeeded": 2}
    assert [r.id for r in workflows.runs("daily")] == [run.id]


def test_a_failed_workflow_run_resumes_only_the_failed_node_and_what_follows(store: Store) -> None:
    workflows = chain(store, "etl", "a", "b", "c")
    scheduler = Scheduler(store, Connections(store, None))
    run = workflows.run("etl")
    with pytest.raises(InvalidState, match="only a FAILED or STOPPED run"):
        workflows.resume(run.id)
    _finish(store, workflows, run.id, "job:a", "SUCCEEDED")
    scheduler.tick()
    _finish(store, workflows, run.id, "job:b", "FAILED")
    assert scheduler.tick() == []
    failed = workflows.get_run(run.id)
    assert failed.state == "FAILED" and failed.error == "job:b FAILED"
    assert [_node(failed, n)[0] for n in ("job:a", "job:b", "job:c")] == ["SUCCEEDED", "FAILED", "NOT_RUN"]
    with pytest.raises(ConfigurationError, match="did not run"):
        workflows.resume(run.id, nodes=["job:c"])

    resumed = workflows.resume(run.id)
    assert resumed.id != run.id and resumed.previous_run_id == run.id and resumed.state == "RUNNING"
    assert _node(resumed, "job:a") == ("SUCCEEDED", _node(failed, "job:a")[1])  # carried over, not run again
    state, (b_run,) = _node(resumed, "job:b")
    assert state == "WAITING" and b_run not in _node(failed, "job:b")[1]
    assert scheduler.tick() == []  # a's old success does not fire b again
    _finish(store, workflows, resumed.id, "job:b", "SUCCEEDED")
    (fired,) = scheduler.tick()
    assert fired.trigger == "etl-after-b"
    _finish(store, workflows, resumed.id, "job:c", "SUCCEEDED")
    scheduler.tick()
    assert workflows.get_run(resumed.id).state == "COMPLETED"
    assert workflows.get_run(run.id).state == "FAILED"  # the failed run keeps its history
    assert [len(Jobs(store).list_runs(job=j)) for j in ("a", "b", "c")] == [1, 2, 1]


def test_a_workflow_run_can_be_stopped_and_a_workflow_needs_one_start_trigger(store: Store) -> None:
    workflows = chain(store, "w", "a", "b")
    run = workflows.run("w")
    stopped = workflows.stop(run.id)
    assert stopped.state == "STOPPED"
    assert _node(stopped, "job:a")[0] == "STOPPED"  # its waiting job run stopped at once
    with pytest.raises(InvalidState, match="already ended"):
        workflows.stop(run.id)
    Triggers(store).delete("w-start")
    with pytest.raises(InvalidState, match="0 start triggers"):
        workflows.run("w")
    workflows.delete("w")
    assert Triggers(store).list_all() == []


def test_a_node_ending_while_the_predicates_are_evaluated_does_not_end_the_run(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race a loaded machine hit: the run's last active job ends (a supervisor's update) after a
    tick read it as running but before the tick decided the run was over. The run must go on, and
    the next tick fires the next node."""
    import stream_etl.control.workflows as workflows_module

    workflows = chain(store, "racy", "load", "report")
    run = workflows.run("racy")
    original = workflows_module.satisfied

    def satisfied_while_load_ends(*args, **kwargs):  # type: ignore[no-untyped-def]
        _finish(store, workflows, run.id, "job:load", "SUCCEEDED")  # the supervisor, meanwhile
        monkeypatch.setattr(workflows_module, "satisfied", original)
        return original(*args, **kwargs)

    monkeypatch.setattr(workflows_module, "satisfied", satisfied_while_load_ends)
    assert workflows.advance(run.id) == []  # evaluated while load was running: nothing fires
    assert workflows.get_run(run.id).state == "RUNNING"  # and the run is not over

    (fired,) = workflows.advance(run.id)
    assert fired.trigger == "racy-after-load"
    assert _node(workflows.get_run(run.id), "job:report")[0] == "WAITING"
