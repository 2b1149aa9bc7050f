"""Table maintenance beside a live writer: compaction jobs, scheduled by a cron trigger (a real
`stream-etl scheduler`) and run by a real `stream-etl worker` supervisor, shrink the table's
files while a continuous worker keeps committing many small batches; afterwards every produced
record is in the table exactly once."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from connectors.kafka.admin import produce
from stream_etl.control.jobs import FINISHED, Jobs, RunInfo, parse_spec
from stream_etl.control.store import Store
from stream_etl.control.trigger_specs import parse_trigger
from stream_etl.control.triggers import Triggers
from stream_etl.samples import orders
from tests.e2e.test_supervisor import _wait, control, metadata_url  # noqa: F401 - fixtures
from tests.e2e.test_triggers import scheduler  # noqa: F401 - fixture
from tests.e2e.workers import ORDERS, assert_same_orders, expected_orders, read_table, wait_for
from tests.services import Services

pytestmark = pytest.mark.timeout(600)
MAX_RECORDS = 200_000  # 800 s at 250 records/s: past the waits below
RATE = 250  # records/s: a loaded machine's writer (300-record commits) keeps up


def _files(uri: str, services: Services, version: int | None = None) -> int:
    try:
        table = DeltaTable(uri, storage_options=services.storage_options(), version=version)
    except TableNotFoundError:
        return 0
    return len(table.file_uris())


def _file_count_drops(uri: str, services: Services, latest: int) -> list[int]:
    """The versions up to ``latest`` that hold fewer files than the one before."""
    table = DeltaTable(uri, storage_options=services.storage_options(), version=0)
    counts = []
    for version in range(latest + 1):
        table.load_as_version(version)
        counts.append(len(table.file_uris()))
    return [v for v in range(1, latest + 1) if counts[v] < counts[v - 1]]


@pytest.mark.slow
def test_scheduled_compactions_beside_a_live_worker_keep_every_record_exactly_once(
    services: Services,
    topic: Callable[..., str],
    table_uri: str,
    unique: str,
    control: tuple[Store, subprocess.Popen[bytes], str],  # noqa: F811 - the fixture
    scheduler: Path,  # noqa: F811 - the fixture
) -> None:
    store, _supervisor, log = control
    name = topic(partitions=2)
    jobs = Jobs(store)
    writer_args = {"topic": name, "table": table_uri, "batch_records": "300", "assignment": "direct"}
    jobs.create(
        parse_spec(
            {
                "name": "orders",
                "topology": ORDERS,
                "arguments": writer_args,
                "connections": ["kafka", "lake"],
                "app_id": unique,
            }
        )
    )
    jobs.create(
        parse_spec({"name": "compact", "kind": "compact", "arguments": {"table": table_uri}, "connections": ["lake"]})
    )
    # Produce at RATE until both compactions are seen (however long a loaded machine takes).
    stop, produced = threading.Event(), [0]

    def live_orders() -> Iterator[bytes]:
        for value in orders(MAX_RECORDS):
            if stop.is_set():
                return
            produced[0] += 1
            yield value

    producer = threading.Thread(
        target=produce, args=(services.kafka_bootstrap, name, live_orders()), kwargs={"rate": RATE}, daemon=True
    )
    producer.start()
    writing = jobs.start("orders")
    wait_for(lambda: _files(table_uri, services) >= 16, 90, "small files to pile up")
    # A cron trigger (6 fields: seconds first) queues a compaction run every 6 s; the supervisor runs it.
    schedule = {
        "name": "compact-often",
        "type": "SCHEDULED",
        "schedule": "*/6 * * * * *",
        "actions": [{"job": "compact"}],
    }
    Triggers(store).create(parse_trigger(schedule))

    def compactions() -> list[RunInfo]:
        done = jobs.list_runs(job="compact", state="SUCCEEDED")
        return sorted((r for r in done if r.metrics["maintenance"]["files_removed"]), key=lambda r: r.id)

    def no_compactions() -> str:
        runs = [(r.id, r.state, r.error) for r in jobs.list_runs(job="compact")]
        return f"two scheduled compactions; compact runs: {runs}\n{scheduler.read_text()[-2000:]}"

    wait_for(lambda: len(compactions()) >= 2, 200, no_compactions)
    Triggers(store).set_enabled("compact-often", False)
    assert producer.is_alive(), f"the producer ran out ({MAX_RECORDS}) before the second compaction"
    assert not jobs.list_runs(job="compact", state="FAILED")
    for run in compactions()[:2]:
        result = run.metrics["maintenance"]
        assert result["kind"] == "compact" and result["files_removed"] > result["files_added"] > 0
    # The compaction commits themselves dropped the table's file count (a writer's commit only adds
    # files). Found by counting every version's files, not by the version a compaction reports:
    # under contention delta-rs's history can name a neighbouring version.
    latest = DeltaTable(table_uri, storage_options=services.storage_options()).version()
    drops = _file_count_drops(table_uri, services, latest)
    assert len(drops) >= 2, drops
    for compacted in drops[:2]:
        # ...and the worker kept committing after each.
        wait_for(
            lambda v=compacted: any(  # type: ignore[misc]
                int(h["version"]) > v and h.get("stream_etl.app_id") == unique
                for h in DeltaTable(table_uri, storage_options=services.storage_options()).history(50)
            ),
            90,
            "a worker commit after the compaction",
        )
    assert jobs.get_run(writing.id).state == "RUNNING"

    stop.set()
    producer.join(timeout=120)
    assert not producer.is_alive()
    total = produced[0]
    expected = expected_orders(range(total)).num_rows
    wait_for(lambda: (read_table(table_uri, services) or expected_orders([])).num_rows >= expected, 180, "catch-up")
    jobs.stop(writing.id)
    stopped = _wait(jobs, writing.id, lambda r: r.state in FINISHED, log)
    assert stopped.state == "STOPPED", stopped.error
    assert_same_orders(read_table(table_uri, services), range(total))
    history = DeltaTable(table_uri, storage_options=services.storage_options()).history()
    assert sum(h["operation"] == "OPTIMIZE" for h in history) >= 2
