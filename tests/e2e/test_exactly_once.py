"""Kafka -> topology -> Delta on S3, against the real broker and S3, with crashes and rebalances."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import confluent_kafka as ck
import pytest
from deltalake import DeltaTable

from connectors.delta import txn_app_id
from connectors.kafka.admin import produce
from stream_etl.records import SourcePartition
from stream_etl.samples import malformed, order, orders
from tests.e2e.workers import (
    assert_same_orders,
    client_env,
    read_table,
    run_worker,
    start_worker,
    table_version,
)
from tests.services import Services

pytestmark = pytest.mark.timeout(600)


def test_100k_records_in_four_partitions_land_exactly_once(
    services: Services, topic: Callable[..., str], table_uri: str, unique: str, tmp_path: Path, kafka_client: str
) -> None:
    name = topic(partitions=4)
    produce(services.kafka_bootstrap, name, orders(100_000))

    summary = run_worker(
        services,
        app_id=unique,
        args={"topic": name, "table": table_uri},
        log=tmp_path / "w.log",
        extra_env=client_env(kafka_client),
    )
    logged = (tmp_path / "w.log").read_text()
    assert ("(aiokafka)" in logged) == (kafka_client == "aiokafka")
    native = kafka_client == "confluent" and os.environ.get("STREAM_ETL_KAFKA_NATIVE") != "0"
    assert ("native record path" in logged) == native

    assert_same_orders(read_table(table_uri, services), range(100_000))
    stats = summary["stats"]
    assert stats["records_in"] == 100_000
    assert stats["records_in"] == stats["written"] + stats["filtered"] + stats["dead_lettered"]


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    services: Services, topic: Callable[..., str], table_uri: str, unique: str, tmp_path: Path, kafka_client: str
) -> None:
    total = 300_000  # enough that five kills land before a worker consumes everything
    name = topic(partitions=4)
    produce(services.kafka_bootstrap, name, orders(total))
    args = {"topic": name, "table": table_uri, "batch_records": "2000"}
    rng = random.Random(20261121)
    rows_at_kill: list[int] = []
    for attempt in range(12):
        if len(rows_at_kill) >= 5:
            break
        log = tmp_path / f"worker-{attempt}.log"
        before = table_version(table_uri, services)
        process = start_worker(
            services, app_id=unique, args=args, log=log, until_caught_up=True, extra_env=client_env(kafka_client)
        )
        deadline = time.monotonic() + 60
        while table_version(table_uri, services) <= before and process.poll() is None:
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.1))  # mid-stream: somewhere among the next commits
        if process.poll() is not None:
            break  # finished before the kill; the checks below tell whether enough kills landed
        process.send_signal(signal.SIGKILL)
        process.wait()
        table = read_table(table_uri, services)
        rows_at_kill.append(table.num_rows if table is not None else 0)

    assert len(rows_at_kill) >= 5, f"only {len(rows_at_kill)} kills landed before the stream was consumed"
    assert rows_at_kill == sorted(rows_at_kill) and rows_at_kill[-1] < 0.99 * total
    run_worker(services, app_id=unique, args=args, log=tmp_path / "final.log", extra_env=client_env(kafka_client))
    assert_same_orders(read_table(table_uri, services), range(total))


@pytest.mark.slow
@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_two_workers_share_partitions_and_one_takes_over(
    services: Services,
    topic: Callable[..., str],
    table_uri: str,
    unique: str,
    tmp_path: Path,
    stop_with: signal.Signals,
    kafka_client: str,
) -> None:
    name = topic(partitions=4)
    args = {"topic": name, "table": table_uri, "batch_records": "5000"}
    produce(services.kafka_bootstrap, name, orders(40_000))
    env = client_env(kafka_client)
    first = start_worker(services, app_id=unique, args=args, log=tmp_path / "a.log", extra_env=env)
    second = start_worker(services, app_id=unique, args=args, log=tmp_path / "b.log", extra_env=env)
    try:
        _wait_for(
            lambda: "assigned" in (tmp_path / "a.log").read_text() and "assigned" in (tmp_path / "b.log").read_text(),
            60,
        )
        produce(services.kafka_bootstrap, name, orders(40_000, start=40_000))
        _wait_for(lambda: _writers(table_uri, services) >= {first.pid, second.pid}, 60)
        first.send_signal(stop_with)
        first.wait(timeout=60)
        produce(services.kafka_bootstrap, name, orders(40_000, start=80_000))
        expected_rows = sum(1 for i in range(120_000) if order(i)["amount"] >= 0)
        _wait_for(lambda: (read_table(table_uri, services) or _empty()).num_rows >= expected_rows, 120)
        time.sleep(2)  # let a duplicate, if any, land before checking
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
    assert second.returncode == 0, (tmp_path / "b.log").read_text()[-3000:]
    assert_same_orders(read_table(table_uri, services), range(120_000))
    assert "revoked" in (tmp_path / "b.log").read_text()


def test_resume_comes_from_the_delta_log_not_from_group_offsets(
    services: Services, topic: Callable[..., str], table_uri: str, unique: str, tmp_path: Path, kafka_client: str
) -> None:
    env = client_env(kafka_client)
    name = topic(partitions=4)
    produce(services.kafka_bootstrap, name, orders(20_000))
    args = {"topic": name, "table": table_uri}
    run_worker(services, app_id=unique, args=args, log=tmp_path / "1.log", extra_env=env)
    version = table_version(table_uri, services)
    partitions = [ck.TopicPartition(name, p) for p in range(4)]
    delta = DeltaTable(table_uri, storage_options=services.storage_options())
    stored = [delta.transaction_version(txn_app_id(unique, SourcePartition(name, p))) for p in range(4)]
    assert sum(v + 1 for v in stored if v is not None) == 20_000
    # Group offsets mirror the Delta positions, for lag tooling only.
    no_offset = ck.OFFSET_INVALID  # a partition that got no record has nothing committed
    assert [tp.offset for tp in _committed(services, unique, partitions)] == [
        v + 1 if v is not None else no_offset for v in stored
    ]

    _reset_group(services, unique, partitions)
    assert [tp.offset for tp in _committed(services, unique, partitions)] == [0] * 4

    summary = run_worker(services, app_id=unique, args=args, log=tmp_path / "2.log", extra_env=env)
    assert summary["stats"]["written"] == 0
    assert table_version(table_uri, services) == version
    assert_same_orders(read_table(table_uri, services), range(20_000))

    produce(services.kafka_bootstrap, name, orders(4_000, start=20_000))
    summary = run_worker(services, app_id=unique, args=args, log=tmp_path / "3.log", extra_env=env)
    assert summary["stats"]["records_in"] == 4_000
    assert_same_orders(read_table(table_uri, services), range(24_000))


def test_malformed_json_goes_to_the_dead_letter_table_and_counts_reconcile(
    services: Services, topic: Callable[..., str], table_uri: str, unique: str, tmp_path: Path
) -> None:
    total, bad_every = 10_000, 500
    name = topic(partitions=4)
    started = time.time()
    produce(services.kafka_bootstrap, name, orders(total, bad_every=bad_every))

    summary = run_worker(services, app_id=unique, args={"topic": name, "table": table_uri}, log=tmp_path / "w.log")

    bad_ids = [i for i in range(total) if i % bad_every == bad_every - 1]
    good_ids = [i for i in range(total) if i % bad_every != bad_every - 1]
    main = read_table(table_uri, services)
    assert_same_orders(main, good_ids)
    dead = read_table(f"{table_uri}_dead_letters", services)
    assert dead is not None
    assert sorted(dead["raw"].to_pylist()) == sorted(malformed(i) for i in bad_ids)
    assert set(dead["step"].to_pylist()) == {"decode"}
    assert set(dead["topic"].to_pylist()) == {name}
    assert all("JSON" in e for e in dead["error"].to_pylist())
    positions = set(zip(dead["partition"].to_pylist(), dead["offset"].to_pylist(), strict=True))
    assert len(positions) == len(bad_ids)
    assert all(started - 5 <= t.timestamp() <= time.time() for t in dead["dead_lettered_at"].to_pylist())
    filtered = sum(1 for i in good_ids if order(i)["amount"] < 0)
    assert total == main.num_rows + filtered + dead.num_rows
    stats = summary["stats"]
    assert (stats["records_in"], stats["written"], stats["filtered"], stats["dead_lettered"]) == (
        total,
        main.num_rows,
        filtered,
        dead.num_rows,
    )


# helpers ---------------------------------------------------------------------------


def _wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.2)


def _empty():  # type: ignore[no-untyped-def]
    import pyarrow as pa

    return pa.table({})


def _writers(uri: str, services: Services) -> set[int]:
    try:
        history = DeltaTable(uri, storage_options=services.storage_options()).history()
    except Exception:  # noqa: BLE001 - not created yet
        return set()
    return {int(str(h["stream_etl.worker"]).rsplit(":", 1)[1]) for h in history if "stream_etl.worker" in h}


def _committed(services: Services, group: str, partitions: list[ck.TopicPartition]) -> list[ck.TopicPartition]:
    consumer = ck.Consumer({"bootstrap.servers": services.kafka_bootstrap, "group.id": group})
    try:
        return consumer.committed(partitions, timeout=10)
    finally:
        consumer.close()


def _reset_group(services: Services, group: str, partitions: list[ck.TopicPartition]) -> None:
    consumer = ck.Consumer({"bootstrap.servers": services.kafka_bootstrap, "group.id": group})
    try:
        consumer.commit(offsets=[ck.TopicPartition(tp.topic, tp.partition, 0) for tp in partitions], asynchronous=False)
    finally:
        consumer.close()
