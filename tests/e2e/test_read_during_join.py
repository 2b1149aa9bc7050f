"""Reading during the group join (KafkaSource(read_during_join=True), the default), end to end:
kept when the group assigns every partition, dropped when it assigns part, exactly once either way;
what was read is staged (its files written) during the join and committed in one commit."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.kafka.admin import produce
from stream_etl.samples import order, orders
from tests.e2e.workers import assert_same_orders, killed_at, read_table, run_worker, start_worker, wait_for
from tests.services import Services

pytestmark = pytest.mark.timeout(600)

KEPT = "keeping what was read during the join"
DROPPED = "dropping what was read during the join"
STAGED = "read and written during the join"


def test_a_lone_worker_keeps_what_it_read_during_the_join(
    services: Services, topic: Callable[..., str], table_uri: str, unique: str, tmp_path: Path
) -> None:
    name = topic(partitions=4)
    produce(services.kafka_bootstrap, name, orders(60_000))
    args = {"topic": name, "table": table_uri, "batch_records": "10000"}

    summary = run_worker(services, app_id=unique, args=args, log=tmp_path / "w.log")

    logged = (tmp_path / "w.log").read_text()
    assert "during the group join" in logged and KEPT in logged
    # 10,000-record batches read in the ~3 s join: staged, then committed at once (how many
    # were staged before the verdict depends on the machine's load).
    found = re.search(rf"committed (\d+) batch\(es\) {STAGED}", logged)
    assert found is not None, logged[-3000:]
    staged = int(found.group(1))
    assert staged >= 1
    # (at most: a batch that only carries partition ends commits nothing)
    assert summary["stats"]["commits"] <= 1 + summary["stats"]["batches"] - staged
    assert summary["stats"]["stale_batches"] == 0
    assert summary["stats"]["records_in"] == 60_000
    assert_same_orders(read_table(table_uri, services), range(60_000))


def test_a_worker_given_part_of_the_topic_drops_what_it_read_early_and_nothing_doubles(
    services: Services, topic: Callable[..., str], table_uri: str, unique: str, tmp_path: Path
) -> None:
    """The second worker reads all four partitions while it joins; the group gives it two, so it
    drops everything it read and reads its two from the stored positions; the first worker,
    which kept what it read at its own join, is revoked and carries on with the other two."""
    name = topic(partitions=4)
    args = {"topic": name, "table": table_uri, "batch_records": "5000"}
    produce(services.kafka_bootstrap, name, orders(40_000))
    first = start_worker(services, app_id=unique, args=args, log=tmp_path / "a.log")
    second = None
    try:
        wait_for(lambda: KEPT in (tmp_path / "a.log").read_text(), 60, "the first worker's verdict")
        produce(services.kafka_bootstrap, name, orders(40_000, start=40_000))
        second = start_worker(services, app_id=unique, args=args, log=tmp_path / "b.log")
        wait_for(lambda: DROPPED in (tmp_path / "b.log").read_text(), 60, "the second worker's verdict")
        produce(services.kafka_bootstrap, name, orders(40_000, start=80_000))
        valid = sum(1 for i in range(120_000) if order(i)["amount"] >= 0)
        wait_for(
            lambda: (table := read_table(table_uri, services)) is not None and table.num_rows >= valid,
            120,
            "every valid order in the table",
        )
        time.sleep(2)  # let a duplicate, if any, land before checking
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
    assert first.returncode == 0, (tmp_path / "a.log").read_text()[-3000:]
    assert second is not None and second.returncode == 0, (tmp_path / "b.log").read_text()[-3000:]
    assert "revoked" in (tmp_path / "a.log").read_text()
    assert_same_orders(read_table(table_uri, services), range(120_000))


def test_a_worker_killed_before_the_verdict_committed_nothing_and_a_restart_lands_everything_once(
    services: Services, topic: Callable[..., str], table_uri: str, unique: str, tmp_path: Path
) -> None:
    name = topic(partitions=4)
    produce(services.kafka_bootstrap, name, orders(30_000))
    args = {"topic": name, "table": table_uri, "batch_records": "5000"}

    # The third batch closes long before the ~3 s join ends: killed while reading early.
    killed_at(services, "batch_closed:3", app_id=unique, args=args, log=tmp_path / "killed.log")
    assert KEPT not in (tmp_path / "killed.log").read_text()
    assert read_table(table_uri, services) is None  # nothing committed before the verdict

    summary = run_worker(services, app_id=unique, args=args, log=tmp_path / "w.log")
    assert summary["stats"]["records_in"] == 30_000
    assert_same_orders(read_table(table_uri, services), range(30_000))


@pytest.mark.parametrize("fault", ["before_commits:1", "primary_committed:1"])
def test_a_worker_killed_at_the_staged_commit_loses_and_doubles_nothing(
    services: Services, topic: Callable[..., str], table_uri: str, unique: str, tmp_path: Path, fault: str
) -> None:
    """SIGKILLed just before and just after the commit of what it staged during the join: the
    restart reads from whatever the table stores, the staged files of the first try stay
    unreferenced, and every record lands once."""
    name = topic(partitions=4)
    produce(services.kafka_bootstrap, name, orders(30_000))
    args = {"topic": name, "table": table_uri, "batch_records": "5000"}

    killed_at(services, fault, app_id=unique, args=args, log=tmp_path / "killed.log")
    table = read_table(table_uri, services)
    if fault.startswith("before"):
        assert table is None
    else:  # killed right after the first commit: the staged batches, at once
        assert table is not None and table.num_rows > 0

    summary = run_worker(services, app_id=unique, args=args, log=tmp_path / "w.log")
    assert summary["stats"]["dead_lettered"] == 0
    assert_same_orders(read_table(table_uri, services), range(30_000))
