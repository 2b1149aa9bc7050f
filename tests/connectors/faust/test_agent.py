"""The Faust interop (connectors/faust) against the local broker and S3: the example app
(examples/faust_orders.py) puts every order in the Delta table once, and a replay from the
beginning (a new Faust consumer group) adds nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import confluent_kafka as ck
import pytest

from connectors.kafka.admin import produce
from stream_etl.samples import orders
from tests.e2e.workers import ROOT, assert_same_orders, read_table, table_version
from tests.services import Services

pytestmark = pytest.mark.timeout(300)

EXAMPLE = str(ROOT / "examples" / "faust_orders.py")


def _start(
    services: Services,
    *,
    faust_app: str,
    topic: str,
    table: str,
    app_id: str,
    log: Path,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **(extra_env or {}),
        **services.environment(),
        "PYTHONPATH": str(ROOT),
        "STREAM_ETL_FAUST_APP": faust_app,
        "STREAM_ETL_FAUST_TOPIC": topic,
        "STREAM_ETL_FAUST_TABLE": table,
        "STREAM_ETL_FAUST_APP_ID": app_id,
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, EXAMPLE, "worker", "--loglevel", "info", "--without-web"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _consumed(services: Services, group: str, topic: str, partitions: int) -> int:
    """How many records the group has committed past (partitions it never committed count 0)."""
    return sum(max(offset, 0) for offset in _committed(services, group, topic, partitions))


def _committed(services: Services, group: str, topic: str, partitions: int) -> list[int]:
    consumer = ck.Consumer({"bootstrap.servers": services.kafka_bootstrap, "group.id": group})
    try:
        found = consumer.committed([ck.TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        consumer.close()
    return [tp.offset for tp in found]


def _wait_for(condition: Callable[[], bool], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)


def test_a_faust_app_lands_records_once_and_a_replay_adds_nothing(
    services: Services, topic: Callable[..., str], table_uri: str, unique: str, tmp_path: Path
) -> None:
    total = 2000
    name = topic(partitions=2)
    produce(services.kafka_bootstrap, name, orders(total))
    expected = [i for i in range(total)]

    first = _start(
        services, faust_app=f"{unique}-a", topic=name, table=table_uri, app_id=unique, log=tmp_path / "a.log"
    )
    try:
        _wait_for(lambda: (read_table(table_uri, services) or _empty()).num_rows >= 1, 180, tmp_path / "a.log")
        _wait_for(lambda: _consumed(services, f"{unique}-a", name, 2) >= total, 180, tmp_path / "a.log")
    finally:
        _stop(first)
    assert_same_orders(read_table(table_uri, services), expected)
    version = table_version(table_uri, services)

    # A replay from the beginning: another Faust app (consumer group), the same stream-etl job.
    replay = _start(
        services, faust_app=f"{unique}-b", topic=name, table=table_uri, app_id=unique, log=tmp_path / "b.log"
    )
    try:
        _wait_for(lambda: _consumed(services, f"{unique}-b", name, 2) >= total, 180, tmp_path / "b.log")
    finally:
        _stop(replay)
    assert table_version(table_uri, services) == version  # nothing committed: every record was skipped
    assert_same_orders(read_table(table_uri, services), expected)


def _empty():  # type: ignore[no-untyped-def]
    import pyarrow as pa

    return pa.table({})


@pytest.mark.slow
def test_a_sigkilled_faust_app_restarts_without_loss_or_duplicates(
    services: Services, topic: Callable[..., str], table_uri: str, unique: str, tmp_path: Path
) -> None:
    """The app SIGKILLs itself between the dead-letter and the primary commit of its third
    batch; restarted under the same Faust app name, it resumes from Faust's committed offsets
    (never ahead of the table's) and the table ends with every order once."""
    total = 5000
    name = topic(partitions=2)
    produce(services.kafka_bootstrap, name, orders(total))
    common = {"faust_app": f"{unique}-a", "topic": name, "table": table_uri, "app_id": unique}
    small = {"STREAM_ETL_FAUST_BATCH_RECORDS": "500"}
    log = tmp_path / "app.log"

    # Faust commits the offsets of acknowledged events every 50 ms: an event acknowledged before the
    # table stored it (take_events acks each batch when it hands it over) would be skipped after
    # the kill, which follows the dead-letter commit by more than that.
    fault = {"STREAM_ETL_FAULT": "secondaries_committed:3", "STREAM_ETL_FAUST_COMMIT_INTERVAL": "0.05"}
    killed = _start(services, **common, log=log, extra_env={**small, **fault})
    try:
        assert killed.wait(timeout=120) == -signal.SIGKILL, log.read_text()[-3000:]
    finally:
        _stop(killed)
    at_kill = read_table(table_uri, services)
    assert at_kill is not None and 0 < at_kill.num_rows < total

    restarted = _start(services, **common, log=log, extra_env=small)
    try:
        _wait_for(lambda: _consumed(services, f"{unique}-a", name, 2) >= total, 180, log)
    finally:
        _stop(restarted)
    assert_same_orders(read_table(table_uri, services), range(total))
