"""The worker supervisor against the real broker and S3: a SIGKILLed worker is restarted
and the run still ends SUCCEEDED exactly once; out of retries, the run ends FAILED."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet

from connectors.kafka.admin import produce
from stream_etl.control.catalog import Catalog
from stream_etl.control.connections import Connections
from stream_etl.control.jobs import FINISHED, Jobs, RunInfo, parse_spec
from stream_etl.control.secrets import SecretBox
from stream_etl.control.store import Store
from stream_etl.samples import orders
from tests.e2e.workers import ORDERS, ROOT, assert_same_orders, read_table, table_version
from tests.services import Services
from tests.stream_etl.control.conftest import POSTGRES

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def metadata_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The store: a SQLite file, or (``indirect`` param ``postgres``) a fresh Postgres database."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield f"sqlite:///{tmp_path / 'control.db'}"
        return
    name = f"control_e2e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def control(
    tmp_path: Path, services: Services, metadata_url: str
) -> Iterator[tuple[Store, subprocess.Popen[bytes], str]]:
    key = Fernet.generate_key().decode()
    url = metadata_url
    store = Store.open(url)
    connections = Connections(store, SecretBox(key))
    connections.create("kafka", "kafka", {"bootstrap_servers": services.kafka_bootstrap})
    connections.create(
        "lake",
        "s3",
        {
            "endpoint_url": services.s3_endpoint,
            "access_key_id": services.access_key,
            "secret_access_key": services.secret_key,
        },
    )
    # The worker's environment has no service settings of its own: they come from the connections.
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_ETL_")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "STREAM_ETL_CONTROL_KEY": key,
        "STREAM_ETL_KAFKA_CONSUMER_OPTIONS": services.consumer_options,
    }
    command = [sys.executable, "-m", "stream_etl", "worker", "--db", url, "--log-dir", str(tmp_path / "logs")]
    command += ["--poll-interval", "0.2", "--backoff", "0.5", "--stop-grace", "10"]
    with (tmp_path / "supervisor.log").open("wb") as log:
        supervisor = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield store, supervisor, str(tmp_path / "supervisor.log")
    finally:
        if supervisor.poll() is None:
            supervisor.send_signal(signal.SIGTERM)
        try:
            supervisor.wait(timeout=60)
        except subprocess.TimeoutExpired:
            supervisor.kill()
            supervisor.wait()
        store.close()


def _wait(jobs: Jobs, run_id: int, until: Callable[[RunInfo], bool], log: str, timeout: float = 300) -> RunInfo:
    deadline = time.monotonic() + timeout
    while True:
        run = jobs.get_run(run_id)
        if until(run):
            return run
        assert time.monotonic() < deadline, f"run {run_id} stuck in {run.state}:\n{Path(log).read_text()[-3000:]}"
        time.sleep(0.1)


@pytest.mark.parametrize("metadata_url", ["sqlite", "postgres"], indirect=True)
def test_a_sigkilled_worker_is_restarted_and_the_run_succeeds_exactly_once(
    services: Services,
    topic: Callable[..., str],
    table_uri: str,
    unique: str,
    control: tuple[Store, subprocess.Popen[bytes], str],
) -> None:
    store, _supervisor, log = control
    total = 60_000
    name = topic(partitions=4)
    produce(services.kafka_bootstrap, name, orders(total))
    jobs = Jobs(store)
    jobs.create(
        parse_spec(
            {
                "name": "orders",
                "topology": ORDERS,
                "arguments": {"topic": name, "table": table_uri, "batch_records": "1000", "assignment": "direct"},
                "mode": "until_caught_up",
                "max_retries": 2,
                "connections": ["kafka", "lake"],
                "app_id": unique,
                "catalog_database": "lake",
            }
        )
    )
    run = jobs.start("orders")
    running = _wait(jobs, run.id, lambda r: r.state == "RUNNING" and bool(r.pids), log)
    deadline = time.monotonic() + 120
    while table_version(table_uri, services) < 2:  # mid-stream: a few commits landed
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(int(running.pids[0]), signal.SIGKILL)

    ended = _wait(jobs, run.id, lambda r: r.state in FINISHED, log)
    assert ended.state == "SUCCEEDED", ended.error
    assert ended.attempts == 2
    assert ended.error is None
    assert ended.metrics["worker_failures"] == ["worker 0 killed by SIGKILL"]
    assert_same_orders(read_table(table_uri, services), range(total))
    stats = ended.metrics["stats"]
    assert stats["records_in"] == stats["written"] + stats["filtered"] + stats["dead_lettered"] > 0
    registered = Catalog(store).find_table(table_uri)  # the worker's Delta sink registered its table
    assert registered is not None and registered.database == "lake" and registered.partition_keys == ["country"]


def test_when_retries_run_out_the_run_fails_with_the_error(
    services: Services, unique: str, control: tuple[Store, subprocess.Popen[bytes], str], table_uri: str
) -> None:
    store, _supervisor, log = control
    jobs = Jobs(store)
    jobs.create(
        parse_spec(
            {
                "name": "broken",
                "topology": ORDERS,
                "arguments": {"topic": f"missing-{unique}", "table": table_uri},
                "mode": "until_caught_up",
                "max_retries": 1,
                "connections": ["kafka", "lake"],
                "app_id": unique,
            }
        )
    )
    run = jobs.start("broken")
    ended = _wait(jobs, run.id, lambda r: r.state in FINISHED, log)
    assert ended.state == "FAILED"
    assert ended.attempts == 2
    assert ended.error is not None and "exited with code" in ended.error and f"missing-{unique}" in ended.error


def _job(name: str, topic: str, table_uri: str, app_id: str, **values: object) -> dict[str, object]:
    return {
        "name": name,
        "topology": ORDERS,
        "arguments": {"topic": topic, "table": table_uri, "assignment": "direct"},
        "connections": ["kafka", "lake"],
        "app_id": app_id,
        **values,
    }


def test_a_continuous_run_stops_gracefully_with_its_data_committed(
    services: Services,
    topic: Callable[..., str],
    table_uri: str,
    unique: str,
    control: tuple[Store, subprocess.Popen[bytes], str],
) -> None:
    store, _supervisor, log = control
    name = topic(partitions=2)
    produce(services.kafka_bootstrap, name, orders(2_000))
    jobs = Jobs(store)
    jobs.create(parse_spec(_job("live", name, table_uri, unique, mode="continuous")))
    run = jobs.start("live")
    _wait(jobs, run.id, lambda r: r.state == "RUNNING", log)
    deadline = time.monotonic() + 120
    while (table := read_table(table_uri, services)) is None or table.num_rows < 1_900:  # amounts < 0 are filtered
        assert time.monotonic() < deadline, Path(log).read_text()[-3000:]
        time.sleep(0.2)
    assert jobs.get_run(run.id).state == "RUNNING"  # continuous: caught up, still running
    assert jobs.stop(run.id).state == "STOPPING"
    ended = _wait(jobs, run.id, lambda r: r.state in FINISHED, log)
    assert ended.state == "STOPPED" and ended.attempts == 1 and ended.pids == []
    assert_same_orders(read_table(table_uri, services), range(2_000))


def test_a_run_past_its_timeout_ends_timeout(
    services: Services,
    topic: Callable[..., str],
    table_uri: str,
    unique: str,
    control: tuple[Store, subprocess.Popen[bytes], str],
) -> None:
    store, _supervisor, log = control
    name = topic(partitions=1)
    jobs = Jobs(store)
    jobs.create(parse_spec(_job("slow", name, table_uri, unique, mode="continuous", timeout_s=3)))
    run = jobs.start("slow")
    ended = _wait(jobs, run.id, lambda r: r.state in FINISHED, log)
    assert ended.state == "TIMEOUT"
    assert ended.error is not None and "timeout of 3 s" in ended.error


def test_a_stopped_supervisor_hands_its_runs_back(
    services: Services,
    topic: Callable[..., str],
    table_uri: str,
    unique: str,
    control: tuple[Store, subprocess.Popen[bytes], str],
) -> None:
    store, supervisor, log = control
    name = topic(partitions=1)
    jobs = Jobs(store)
    jobs.create(parse_spec(_job("handed", name, table_uri, unique, mode="continuous")))
    run = jobs.start("handed")
    running = _wait(jobs, run.id, lambda r: r.state == "RUNNING" and bool(r.pids), log)
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=60) == 0
    handed = jobs.get_run(run.id)
    assert (handed.state, handed.pids, handed.supervisor) == ("WAITING", [], None)
    with pytest.raises(ProcessLookupError):  # its worker stopped with it
        os.kill(int(running.pids[0]), 0)


@pytest.mark.slow
def test_two_workers_of_one_job_share_the_topic_and_a_killed_one_is_replaced(
    services: Services,
    topic: Callable[..., str],
    table_uri: str,
    unique: str,
    control: tuple[Store, subprocess.Popen[bytes], str],
) -> None:
    store, _supervisor, log = control
    name = topic(partitions=4)
    produce(services.kafka_bootstrap, name, orders(20_000))
    jobs = Jobs(store)
    spec = _job("pair", name, table_uri, unique, mode="continuous", workers=2, max_retries=2)
    spec["arguments"] = {"topic": name, "table": table_uri, "batch_records": "2000"}  # group assignment
    jobs.create(parse_spec(spec))
    run = jobs.start("pair")

    def rows() -> int:
        table = read_table(table_uri, services)
        return 0 if table is None else table.num_rows

    def wait_rows(expected: int) -> None:
        deadline = time.monotonic() + 180
        while rows() < expected:
            assert time.monotonic() < deadline, Path(log).read_text()[-3000:]
            time.sleep(0.5)

    wait_rows(sum(1 for o in orders_of(range(20_000)) if o >= 0))
    running = jobs.get_run(run.id)
    assert len(running.pids) == 2
    os.kill(int(running.pids[0]), signal.SIGKILL)
    _wait(jobs, run.id, lambda r: r.attempts == 2 and len(r.pids) == 2, log)
    produce(services.kafka_bootstrap, name, orders(20_000, start=20_000))
    wait_rows(sum(1 for o in orders_of(range(40_000)) if o >= 0))
    time.sleep(2)  # let a duplicate, if any, land before checking
    jobs.stop(run.id)
    ended = _wait(jobs, run.id, lambda r: r.state in FINISHED, log)
    assert ended.state == "STOPPED"
    assert_same_orders(read_table(table_uri, services), range(40_000))


def orders_of(ids: range) -> Iterator[float]:
    from stream_etl.samples import order

    return (order(i)["amount"] for i in ids)
