"""Dedupe + event-time windows through Kafka and Delta: a run killed with SIGKILL and restarted
gives the same tables as an uninterrupted one (state restored from snapshots)."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.kafka.admin import produce
from stream_etl.samples import readings
from tests.e2e.workers import ROOT, read_table, run_worker, start_worker, table_version
from tests.services import Services

IOT = str(ROOT / "topologies" / "iot_windows.py")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_windows_killed_and_restarted_equal_an_uninterrupted_run(
    services: Services, topic: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    total = 80_000
    name = topic(partitions=4)
    pairs = list(readings(total))
    produce(services.kafka_bootstrap, name, (v for _, v in pairs), keys=(k for k, _ in pairs))
    base = f"s3://{services.bucket}/{unique}"

    run_worker(
        services,
        app_id=f"{unique}-whole",
        args={"topic": name, "table": f"{base}/whole"},
        log=tmp_path / "whole.log",
        topology=IOT,
    )

    args = {"topic": name, "table": f"{base}/killed", "batch_records": "2500"}
    rng, kills = random.Random(11), 0
    for attempt in range(10):
        if kills >= 4:
            break
        before = table_version(f"{base}/killed", services)
        process = start_worker(
            services,
            app_id=f"{unique}-killed",
            args=args,
            log=tmp_path / f"k{attempt}.log",
            topology=IOT,
            until_caught_up=True,
        )
        deadline = time.monotonic() + 60
        while table_version(f"{base}/killed", services) <= before and process.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    assert kills >= 3
    run_worker(services, app_id=f"{unique}-killed", args=args, log=tmp_path / "final.log", topology=IOT)

    order = [("device", "ascending"), ("window_start", "ascending")]
    whole, killed = read_table(f"{base}/whole", services), read_table(f"{base}/killed", services)
    assert whole is not None and killed is not None
    assert whole.num_rows > 100
    assert killed.sort_by(order).to_pylist() == whole.sort_by(order).to_pylist()
    late = [read_table(f"{base}/{t}_dead_letters", services) for t in ("whole", "killed")]
    assert late[0] is not None and late[1] is not None
    assert set(late[0]["error_class"].to_pylist()) == {"LateEvent"}
    assert sorted(late[1]["raw"].to_pylist()) == sorted(late[0]["raw"].to_pylist())
