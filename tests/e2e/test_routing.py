"""A topic routed to three Delta tables plus dead letters, killed with SIGKILL, exactly once."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.kafka.admin import produce
from stream_etl.samples import malformed, order, orders
from tests.e2e.workers import ROOT, read_table, run_worker, start_worker, table_version
from tests.services import Services

ROUTED = str(ROOT / "topologies" / "orders_routed.py")
TIERS = {"small": (0, 10_000), "medium": (10_000, 30_000), "large": (30_000, 10**12)}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_routing_to_three_tables_survives_sigkill(
    services: Services, topic: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    total, bad_every = 60_000, 997
    name = topic(partitions=4)
    produce(services.kafka_bootstrap, name, orders(total, bad_every=bad_every))
    base = f"s3://{services.bucket}/{unique}"
    args = {"topic": name, "base": base, "batch_records": "3000"}
    rng = random.Random(7)
    kills = 0
    for attempt in range(10):
        if kills >= 4:
            break
        before = table_version(f"{base}/small", services)
        process = start_worker(
            services, app_id=unique, args=args, log=tmp_path / f"w{attempt}.log", topology=ROUTED, until_caught_up=True
        )
        deadline = time.monotonic() + 60
        while table_version(f"{base}/small", services) <= before and process.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    assert kills >= 3, "the stream was consumed before enough kills landed"
    run_worker(services, app_id=unique, args=args, log=tmp_path / "final.log", topology=ROUTED)

    bad = {i for i in range(total) if i % bad_every == bad_every - 1}
    for tier, (low, high) in TIERS.items():
        table = read_table(f"{base}/{tier}", services)
        assert table is not None
        ids = table["id"].to_pylist()
        assert len(ids) == len(set(ids)), f"duplicates in {tier}"
        expected = {
            i
            for i in range(total)
            if i not in bad and (o := order(i))["amount"] >= 0 and low <= round(o["amount"] * 100) < high
        }
        assert set(ids) == expected, f"{tier}: {len(set(ids) ^ expected)} rows differ"
    dead = read_table(f"{base}/dead_letters", services)
    assert dead is not None
    assert sorted(dead["raw"].to_pylist()) == sorted(malformed(i) for i in bad)
