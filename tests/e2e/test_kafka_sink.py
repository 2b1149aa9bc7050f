"""Kafka -> topology -> Kafka (transactions), with workers SIGKILLed mid-stream: a
read_committed consumer of the output topic sees every expected record exactly once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import confluent_kafka as ck
import orjson
import pyarrow as pa
import pytest

from connectors.kafka.admin import produce
from stream_etl.samples import orders
from tests.connectors.kafka.test_sink import read_committed
from tests.e2e.workers import ROOT, assert_same_orders, kill_after_commits, run_worker
from tests.services import Services

pytestmark = pytest.mark.timeout(600)

TOPOLOGY = str(ROOT / "topologies" / "orders_kafka.py")


def _commits(services: Services, positions_topic: str) -> int:
    """Records in the positions topic so far (one per partition per commit, aborted included)."""
    consumer = ck.Consumer({"bootstrap.servers": services.kafka_bootstrap, "group.id": "watermarks"})
    try:
        _, high = consumer.get_watermark_offsets(ck.TopicPartition(positions_topic, 0), timeout=10)
    except ck.KafkaException:
        return 0  # not created yet
    finally:
        consumer.close()
    return int(high)


@pytest.mark.slow
def test_sigkill_restarts_deliver_each_record_once_to_read_committed_consumers(
    services: Services, topic: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    total = 30_000
    source = topic(partitions=4)
    out = topic(partitions=2, suffix="-out")
    produce(services.kafka_bootstrap, source, orders(total))
    args = {"topic": source, "out": out, "batch_records": "1000"}
    positions_topic = f"{out}.stream-etl-positions"
    kills = kill_after_commits(
        services,
        app_id=unique,
        args=args,
        topology=TOPOLOGY,
        logs=tmp_path,
        commits=lambda: _commits(services, positions_topic),
        seed=11,
    )

    assert kills >= 2, f"only {kills} kills landed mid-stream"
    run_worker(services, app_id=unique, args=args, log=tmp_path / "final.log", topology=TOPOLOGY)

    messages = read_committed(services, out, partitions=2, timeout_s=60)
    rows = pa.Table.from_pylist([orjson.loads(m.value()) for m in messages])
    assert_same_orders(rows, range(total))
    assert all(m.key() == str(orjson.loads(m.value())["id"]).encode() for m in messages)
