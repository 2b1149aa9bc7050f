"""Kinesis -> topology -> Delta on S3 with real kinesalite and SeaweedFS: resharding,
SIGKILLs at random moments, and two workers dividing the shards through leases."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from connectors.kinesis.admin import create_stream, kinesis_client, put_records, wait_active
from connectors.kinesis.leases import S3LeaseStore
from stream_etl.samples import order, orders
from tests.e2e.workers import ROOT, assert_same_orders, read_table, run_worker, start_worker, table_version
from tests.services import KinesisService, Services

pytestmark = pytest.mark.timeout(900)

TOPOLOGY = str(ROOT / "topologies" / "kinesis_orders.py")


@pytest.fixture
def client(kinesis: KinesisService) -> Iterator[Any]:
    made = kinesis_client(kinesis.endpoint)
    yield made
    made.close()


def _args(stream: str, table_uri: str, leases: str, **more: str) -> dict[str, str]:
    return {"stream": stream, "table": table_uri, "leases": leases, **more}


def _split_first_shard(client: Any, stream: str) -> None:
    shard = next(
        s
        for s in client.list_shards(StreamName=stream)["Shards"]
        if "EndingSequenceNumber" not in s["SequenceNumberRange"]
    )
    low, high = int(shard["HashKeyRange"]["StartingHashKey"]), int(shard["HashKeyRange"]["EndingHashKey"])
    client.split_shard(StreamName=stream, ShardToSplit=shard["ShardId"], NewStartingHashKey=str((low + high) // 2))
    wait_active(client, stream)


def _merge_two_adjacent_shards(client: Any, stream: str) -> None:
    open_shards = sorted(
        (
            s
            for s in client.list_shards(StreamName=stream)["Shards"]
            if "EndingSequenceNumber" not in s["SequenceNumberRange"]
        ),
        key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]),
    )
    for left, right in zip(open_shards, open_shards[1:], strict=False):
        if int(left["HashKeyRange"]["EndingHashKey"]) + 1 == int(right["HashKeyRange"]["StartingHashKey"]):
            client.merge_shards(StreamName=stream, ShardToMerge=left["ShardId"], AdjacentShardToMerge=right["ShardId"])
            wait_active(client, stream)
            return
    raise AssertionError("no two adjacent open shards")


@pytest.mark.slow
def test_50k_records_with_a_split_a_merge_and_sigkills_land_exactly_once(
    services: Services, kinesis: KinesisService, client: Any, table_uri: str, unique: str, tmp_path: Path
) -> None:
    total = 50_000
    create_stream(client, unique, 4)
    put_records(client, unique, orders(20_000))
    leases = f"s3://{services.bucket}/{unique}/leases"
    args = _args(unique, table_uri, leases, batch_records="2000", lease_seconds="3")
    env = kinesis.environment()
    # The rest of the stream arrives mid-run: a split, 15k records, a merge, 15k records.
    stages: list[Callable[[], None]] = [
        lambda: _split_first_shard(client, unique),
        lambda: put_records(client, unique, orders(15_000, start=20_000), start=20_000),
        lambda: _merge_two_adjacent_shards(client, unique),
        lambda: put_records(client, unique, orders(15_000, start=35_000), start=35_000),
    ]
    rng = random.Random(20261121)
    rows_at_kill: list[int] = []
    for attempt in range(16):
        if len(rows_at_kill) >= 6 and not stages:
            break
        log = tmp_path / f"worker-{attempt}.log"
        before = table_version(table_uri, services)
        process = start_worker(
            services, app_id=unique, args=args, log=log, topology=TOPOLOGY, until_caught_up=True, extra_env=env
        )
        try:
            if stages and attempt >= 1:
                stages.pop(0)()  # reshard or write while the worker reads
            deadline = time.monotonic() + 120
            while table_version(table_uri, services) <= before and process.poll() is None:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.6))  # somewhere among the next commits
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
                table = read_table(table_uri, services)
                rows_at_kill.append(table.num_rows if table is not None else 0)
        assert process.returncode in (0, -signal.SIGKILL), log.read_text()[-3000:]

    print(f"rows in the table at each SIGKILL: {rows_at_kill}")
    assert not stages
    assert len(rows_at_kill) >= 5, f"only {len(rows_at_kill)} kills landed"
    assert rows_at_kill == sorted(rows_at_kill)
    summary = run_worker(
        services, app_id=unique, args=args, log=tmp_path / "final.log", topology=TOPOLOGY, timeout=300, extra_env=env
    )
    assert summary["caught_up"]
    assert_same_orders(read_table(table_uri, services), range(total))
    shards = client.list_shards(StreamName=unique)["Shards"]
    assert len(shards) == 7  # 4, a split (+2), a merge (+1)
    closed = [s["ShardId"] for s in shards if "EndingSequenceNumber" in s["SequenceNumberRange"]]
    doc = _lease_table(services, leases, unique)
    assert all(doc.leases[s]["finished"] for s in closed)


@pytest.mark.slow
def test_two_workers_divide_the_shards_and_a_killed_ones_go_to_the_other(
    services: Services, kinesis: KinesisService, client: Any, table_uri: str, unique: str, tmp_path: Path
) -> None:
    create_stream(client, unique, 4)
    put_records(client, unique, orders(20_000))
    leases = f"s3://{services.bucket}/{unique}/leases"
    lease_seconds = 4
    args = _args(unique, table_uri, leases, batch_records="2000", lease_seconds=str(lease_seconds))
    env = kinesis.environment()
    first = start_worker(services, app_id=unique, args=args, log=tmp_path / "a.log", topology=TOPOLOGY, extra_env=env)
    second = start_worker(services, app_id=unique, args=args, log=tmp_path / "b.log", topology=TOPOLOGY, extra_env=env)
    try:
        # Balanced: two shards each, both writing.
        _wait_for(lambda: _shares(services, leases, unique) == {first.pid: 2, second.pid: 2}, 90, tmp_path)
        put_records(client, unique, orders(20_000, start=20_000), start=20_000)
        _wait_for(lambda: _writers(table_uri, services) >= {first.pid, second.pid}, 90, tmp_path)

        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        killed_at = time.monotonic()
        put_records(client, unique, orders(20_000, start=40_000), start=40_000)
        _wait_for(lambda: _shares(services, leases, unique) == {second.pid: 4}, 90, tmp_path)
        took_over_s = time.monotonic() - killed_at
        expected_rows = sum(1 for i in range(60_000) if order(i)["amount"] >= 0)
        _wait_for(lambda: _rows(table_uri, services) >= expected_rows, 180, tmp_path)
        time.sleep(3)  # let a duplicate, if any, land before checking
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
    assert second.returncode == 0, (tmp_path / "b.log").read_text()[-3000:]
    assert_same_orders(read_table(table_uri, services), range(60_000))
    # Taken over once the dead worker's heartbeat stood still for the lease duration (plus a round).
    print(f"shards taken over {took_over_s:.1f}s after the kill (lease {lease_seconds}s)")
    assert took_over_s < 60


# helpers ---------------------------------------------------------------------------


def _lease_table(services: Services, uri: str, stream: str) -> Any:
    # The app id is the test's unique name, and the stream has the same name.
    store = S3LeaseStore(uri, stream, stream, services.settings())
    try:
        return store.read()
    finally:
        store.close()


def _shares(services: Services, uri: str, stream: str) -> dict[int, int]:
    doc = _lease_table(services, uri, stream)
    counts: dict[int, int] = {}
    for lease in doc.leases.values():
        if lease["owner"] and not lease["finished"]:
            pid = int(str(lease["owner"]).split(":")[1])
            counts[pid] = counts.get(pid, 0) + 1
    return counts


def _rows(uri: str, services: Services) -> int:
    table = read_table(uri, services)
    return table.num_rows if table is not None else 0


def _writers(uri: str, services: Services) -> set[int]:
    try:
        history = DeltaTable(uri, storage_options=services.storage_options()).history()
    except Exception:  # noqa: BLE001 - not created yet
        return set()
    return {int(str(h["stream_etl.worker"]).rsplit(":", 1)[1]) for h in history if "stream_etl.worker" in h}


def _wait_for(condition: Callable[[], bool], timeout: float, logs: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            tails = {p.name: p.read_text()[-1500:] for p in logs.glob("*.log")}
            raise AssertionError(f"timed out waiting; logs: {tails}")
        time.sleep(0.2)
