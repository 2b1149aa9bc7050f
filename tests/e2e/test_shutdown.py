"""Graceful shutdown: SIGTERM finishes (or, past the timeout, abandons) the batch in hand and exits;
a second SIGTERM exits at once. The table never holds a partial commit and a restart finishes exactly once."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from deltalake import DeltaTable

from connectors.delta import txn_app_id
from connectors.kafka.admin import produce
from stream_etl.records import SourcePartition
from stream_etl.samples import orders
from tests.e2e.workers import ROOT, read_table, run_worker, start_worker, table_version
from tests.services import Services

SLOW = str(ROOT / "tests" / "e2e" / "slow_sink_topology.py")
TOTAL, PARTITIONS = 20_000, 2

pytestmark = pytest.mark.timeout(600)


def _committed_prefix_only(uri: str, services: Services, topic: str, app_id: str) -> int:
    """Per partition, the table holds exactly offsets 0..stored position: no partial batch. Returns rows."""
    table = read_table(uri, services)
    if table is None:
        return 0
    delta = DeltaTable(uri, storage_options=services.storage_options())
    for partition in range(PARTITIONS):
        offsets = sorted(
            o
            for p, o in zip(table["_partition"].to_pylist(), table["_offset"].to_pylist(), strict=True)
            if p == partition
        )
        stored = delta.transaction_version(txn_app_id(app_id, SourcePartition(topic, partition)))
        assert offsets == list(range(stored + 1 if stored is not None else 0)), f"partition {partition}"
    return table.num_rows


def _finish_and_check_exactly_once(
    services: Services, topic: str, uri: str, app_id: str, tmp_path: Path, args: dict[str, str]
) -> None:
    run_worker(
        services, app_id=app_id, args={**args, "commit_delay_s": "0"}, log=tmp_path / "restart.log", topology=SLOW
    )
    assert _committed_prefix_only(uri, services, topic, app_id) == TOTAL
    table = read_table(uri, services)
    assert table is not None
    assert sorted(table["id"].to_pylist()) == list(range(TOTAL))


def _wait_for(condition: Callable[[], bool], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)


def _start(services: Services, app_id: str, args: dict[str, str], log: Path, **env: str) -> subprocess.Popen[bytes]:
    return start_worker(services, app_id=app_id, args=args, log=log, topology=SLOW, extra_env=env)


def test_sigterm_during_a_slow_commit_finishes_the_batch_and_exits_cleanly(
    services: Services, topic: Callable[..., str], table_uri: str, unique: str, tmp_path: Path
) -> None:
    name = topic(partitions=PARTITIONS)
    produce(services.kafka_bootstrap, name, orders(TOTAL))
    args = {"topic": name, "table": table_uri, "commit_delay_s": "2", "batch_records": "1000"}
    log = tmp_path / "w.log"
    worker = _start(services, unique, args, log)
    _wait_for(lambda: "slow commit 3: sleeping" in log.read_text(), 120, log)  # the third batch is committing

    worker.send_signal(signal.SIGTERM)

    assert worker.wait(timeout=120) == 0, log.read_text()[-3000:]
    assert "finishing the current batch" in log.read_text()
    assert table_version(table_uri, services) >= 2, "the batch in hand was not finished"
    rows = _committed_prefix_only(table_uri, services, name, unique)
    assert 0 < rows < TOTAL
    _finish_and_check_exactly_once(services, name, table_uri, unique, tmp_path, args)


@pytest.mark.parametrize("force", ["timeout", "second-sigterm"])
def test_a_stop_that_takes_too_long_or_a_second_sigterm_exits_at_once_without_harm(
    services: Services, topic: Callable[..., str], table_uri: str, unique: str, tmp_path: Path, force: str
) -> None:
    name = topic(partitions=PARTITIONS)
    produce(services.kafka_bootstrap, name, orders(TOTAL))
    # Two quick commits, then every commit waits 600 s: the SIGTERM lands in the middle of a batch's commit.
    args = {"topic": name, "table": table_uri, "commit_delay_s": "600", "fast_commits": "2", "batch_records": "1000"}
    log = tmp_path / "w.log"
    worker = _start(services, unique, args, log, STREAM_ETL_SHUTDOWN_TIMEOUT_S="1" if force == "timeout" else "600")
    _wait_for(lambda: "slow commit 3: sleeping 600" in log.read_text(), 120, log)  # in the middle of a commit

    worker.send_signal(signal.SIGTERM)
    if force == "second-sigterm":
        time.sleep(0.5)
        worker.send_signal(signal.SIGTERM)

    assert worker.wait(timeout=120) == 130, log.read_text()[-3000:]
    expected = "not stopped within 1s" if force == "timeout" else "second SIGTERM"
    assert expected in log.read_text()
    _committed_prefix_only(table_uri, services, name, unique)
    _finish_and_check_exactly_once(services, name, table_uri, unique, tmp_path, args)
