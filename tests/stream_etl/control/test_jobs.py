from __future__ import annotations

import time

import pytest
from cryptography.fernet import Fernet

from stream_etl.control.connections import Connections
from stream_etl.control.errors import InvalidState, NotFound
from stream_etl.control.jobs import Jobs, JobSpec, parse_spec
from stream_etl.control.secrets import SecretBox
from stream_etl.control.store import Store
from stream_etl.errors import ConfigurationError


def _spec(**values: object) -> JobSpec:
    return parse_spec({"name": "orders", "topology": "topologies/orders.py", **values})


def test_jobs_are_validated_and_stored(store: Store) -> None:
    jobs = Jobs(store)
    Connections(store, SecretBox(Fernet.generate_key())).create("s3", "s3", {})
    info = jobs.create(
        _spec(
            arguments={"topic": "t"}, workers=2, mode="until_caught_up", max_retries=1, timeout_s=60, connections=["s3"]
        )
    )
    assert (info.app_id, info.workers, info.mode, info.connections) == ("orders", 2, "until_caught_up", ["s3"])
    assert jobs.create(_spec(workers=3), replace=True).workers == 3
    assert [j.name for j in jobs.list_all()] == ["orders"]
    with pytest.raises(ConfigurationError, match="do not exist"):
        jobs.create(_spec(name="other", connections=["nope"]))
    with pytest.raises(ConfigurationError, match="workers"):
        _spec(workers=0)
    with pytest.raises(ConfigurationError, match="mode"):
        _spec(mode="sometimes")
    with pytest.raises(ConfigurationError, match="app id"):
        _spec(app_id="no spaces")


def test_run_states_and_claims(store: Store) -> None:
    jobs = Jobs(store)
    jobs.create(_spec())
    run = jobs.start("orders")
    assert run.state == "WAITING" and run.attempts == 0
    with pytest.raises(InvalidState, match="already has active run"):
        jobs.start("orders")
    claimed = jobs.claim("sup-a")
    assert claimed is not None and claimed[0].id == run.id and claimed[0].state == "STARTING"
    assert claimed[1].name == "orders"
    assert jobs.claim("sup-b") is None  # nobody claims a run twice
    jobs.update_run(run.id, state="RUNNING", attempts=1, pids=["123"])
    stopping = jobs.stop(run.id)
    assert stopping.state == "STOPPING" and stopping.stop_requested
    ended = jobs.update_run(run.id, state="STOPPED", pids=[])
    assert ended.ended_at is not None
    with pytest.raises(InvalidState, match="already ended"):
        jobs.stop(run.id)
    second = jobs.start("orders")
    assert jobs.stop(second.id).state == "STOPPED"  # never claimed: stopped at once
    assert [r.id for r in jobs.list_runs(job="orders")] == [second.id, run.id]
    assert [r.id for r in jobs.list_runs(state="stopped")] == [second.id, run.id]
    third = jobs.start("orders")
    with pytest.raises(InvalidState, match="active run"):
        jobs.delete("orders")
    jobs.stop(third.id)
    jobs.delete("orders")
    with pytest.raises(NotFound):
        jobs.get_run(run.id)


def test_runs_of_a_silent_supervisor_are_queued_again(store: Store) -> None:
    jobs = Jobs(store)
    jobs.create(_spec())
    jobs.create(_spec(name="other"))
    first, second = jobs.start("orders"), jobs.start("other")
    assert jobs.claim("gone") is not None and jobs.claim("gone") is not None
    jobs.update_run(first.id, state="RUNNING", pids=["1"])
    jobs.stop(second.id)
    assert jobs.requeue_stale(60) == []  # heart-beat just now
    time.sleep(0.05)
    assert jobs.requeue_stale(0.01) == [first.id]
    requeued, stopped = jobs.get_run(first.id), jobs.get_run(second.id)
    assert (requeued.state, requeued.pids, requeued.supervisor) == ("WAITING", [], None)
    assert requeued.error is not None and "gone" in requeued.error
    assert stopped.state == "STOPPED" and stopped.ended_at is not None
    claimed = jobs.claim("alive")
    assert claimed is not None and claimed[0].id == first.id
    jobs.heartbeat([first.id])
    assert jobs.requeue_stale(60) == []


def test_maintenance_jobs_name_a_table_and_become_table_commands(store: Store) -> None:
    from stream_etl.control.supervisor import worker_command

    jobs = Jobs(store)
    arguments = {"table": "s3://lake/orders", "z_order": "country,user", "min_files": "4"}
    info = jobs.create(parse_spec({"name": "compact-orders", "kind": "compact", "arguments": arguments}))
    assert (info.kind, info.topology) == ("compact", "")
    assert jobs.get("compact-orders").kind == "compact"
    assert worker_command(info, "python")[3:] == [
        "table", "compact", "s3://lake/orders", "--json", "--z-order", "country,user", "--min-files", "4",
    ]  # fmt: skip
    vacuum = jobs.create(
        parse_spec(
            {
                "name": "v",
                "kind": "vacuum",
                "arguments": {"table": "t", "retention_hours": "0", "enforce_retention": "false", "dry_run": "true"},
            }
        )
    )
    assert worker_command(vacuum, "python")[7:] == [
        "--retention-hours", "0", "--no-enforce-retention", "--dry-run",
    ]  # fmt: skip
    assert jobs.create(_spec()).kind == "topology"
    with pytest.raises(ConfigurationError, match="needs the argument table"):
        parse_spec({"name": "c", "kind": "compact"})
    with pytest.raises(ConfigurationError, match="not retention_hours"):
        parse_spec({"name": "c", "kind": "compact", "arguments": {"table": "t", "retention_hours": "1"}})
    with pytest.raises(ConfigurationError, match="true or false"):
        parse_spec({"name": "v", "kind": "vacuum", "arguments": {"table": "t", "dry_run": "yes"}})
    with pytest.raises(ConfigurationError, match="needs a topology"):
        parse_spec({"name": "t"})
    with pytest.raises(ConfigurationError, match="kind"):
        parse_spec({"name": "t", "kind": "shrink", "arguments": {"table": "t"}})
