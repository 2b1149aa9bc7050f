"""A worker killed at each named moment of a batch's life, then restarted: exactly once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.kafka.admin import produce
from stream_etl.faults import POINTS
from stream_etl.samples import malformed, order, orders, readings
from tests.e2e.workers import ROOT, killed_at, read_table, run_worker
from tests.services import Services

ROUTED = str(ROOT / "topologies" / "orders_routed.py")
IOT = str(ROOT / "topologies" / "iot_windows.py")
TIERS = {"small": (0, 10_000), "medium": (10_000, 30_000), "large": (30_000, 10**12)}


def _crash_then_finish(
    services: Services, topology: str, args: dict[str, str], app_id: str, point: str, tmp_path: Path
) -> None:
    killed_at(services, f"{point}:2", app_id=app_id, args=args, log=tmp_path / "crash.log", topology=topology)
    run_worker(services, app_id=app_id, args=args, log=tmp_path / "final.log", topology=topology)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("point", [p for p in POINTS if p != "state_saved"])
def test_killed_at_each_point_routed_rows_land_once(
    services: Services, topic: Callable[..., str], unique: str, tmp_path: Path, point: str
) -> None:
    total, bad_every = 12_000, 499
    name = topic(partitions=2)
    produce(services.kafka_bootstrap, name, orders(total, bad_every=bad_every))
    base = f"s3://{services.bucket}/{unique}"

    _crash_then_finish(
        services, ROUTED, {"topic": name, "base": base, "batch_records": "1500"}, unique, point, tmp_path
    )

    bad = {i for i in range(total) if i % bad_every == bad_every - 1}
    for tier, (low, high) in TIERS.items():
        table = read_table(f"{base}/{tier}", services)
        assert table is not None
        ids = table["id"].to_pylist()
        expected = {
            i
            for i in range(total)
            if i not in bad and (o := order(i))["amount"] >= 0 and low <= round(o["amount"] * 100) < high
        }
        assert len(ids) == len(set(ids)) and set(ids) == expected, tier
    dead = read_table(f"{base}/dead_letters", services)
    assert dead is not None and sorted(dead["raw"].to_pylist()) == sorted(malformed(i) for i in bad)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("point", ["state_saved", "before_commits", "primary_committed"])
def test_killed_at_each_point_windows_equal_an_uninterrupted_run(
    services: Services, topic: Callable[..., str], unique: str, tmp_path: Path, point: str
) -> None:
    name = topic(partitions=2)
    pairs = list(readings(20_000))
    produce(services.kafka_bootstrap, name, (v for _, v in pairs), keys=(k for k, _ in pairs))
    base = f"s3://{services.bucket}/{unique}"
    run_worker(
        services,
        app_id=f"{unique}-whole",
        args={"topic": name, "table": f"{base}/whole"},
        log=tmp_path / "whole.log",
        topology=IOT,
    )

    _crash_then_finish(
        services,
        IOT,
        {"topic": name, "table": f"{base}/killed", "batch_records": "2000"},
        f"{unique}-k",
        point,
        tmp_path,
    )

    order_by = [("device", "ascending"), ("window_start", "ascending")]
    whole, killed = read_table(f"{base}/whole", services), read_table(f"{base}/killed", services)
    assert whole is not None and killed is not None and whole.num_rows > 20
    assert killed.sort_by(order_by).to_pylist() == whole.sort_by(order_by).to_pylist()
