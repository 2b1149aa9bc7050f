"""Kafka -> topology -> Parquet files on S3, with workers SIGKILLed mid-stream: after the
replays the directory holds every expected row exactly once (read plainly, not only through
the manifests)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from connectors.kafka.admin import produce
from connectors.parquet import read_table
from stream_etl.samples import orders
from stream_etl.storage import filesystem_for
from tests.e2e.workers import ROOT, assert_same_orders, kill_after_commits, run_worker
from tests.services import Services

pytestmark = pytest.mark.timeout(600)

TOPOLOGY = str(ROOT / "topologies" / "orders_parquet.py")


def _commits(uri: str, services: Services) -> int:
    fs, root = filesystem_for(uri, services.settings())
    listing = fs.get_file_info(pafs.FileSelector(f"{root}/_stream_etl/commits", allow_not_found=True))
    return sum(1 for i in listing if i.base_name.endswith(".json"))


@pytest.mark.slow
def test_sigkill_replays_leave_no_duplicate_rows(
    services: Services, topic: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    total = 30_000
    uri = f"s3://{services.bucket}/{unique}/files"
    name = topic(partitions=4)
    produce(services.kafka_bootstrap, name, orders(total))
    args = {"topic": name, "dir": uri, "batch_records": "1000"}
    kills = kill_after_commits(
        services,
        app_id=unique,
        args=args,
        topology=TOPOLOGY,
        logs=tmp_path,
        commits=lambda: _commits(uri, services),
        seed=7,
    )

    assert kills >= 2, f"only {kills} kills landed mid-stream"
    run_worker(services, app_id=unique, args=args, log=tmp_path / "final.log", topology=TOPOLOGY)

    assert_same_orders(read_table(uri, services.settings()), range(total))
    fs, root = filesystem_for(uri, services.settings())
    plain = ds.dataset(root, filesystem=fs, format="parquet", partitioning="hive").to_table()
    assert_same_orders(plain, range(total))  # no file outside the manifests either
