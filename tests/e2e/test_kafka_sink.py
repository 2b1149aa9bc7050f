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
from tests.e2e.workers import ROOT, assert_same_orders, killed_at, run_worker
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


# Kills at the batch's crash points, one worker after another on one app id. Not at random moments:
# Tansu (the test broker) commits, rather than aborts, a fenced producer's open transaction, so a
# kill in the microseconds between two produce requests of a commit's burst can publish part of a
# batch there (docs/SINKS.md); Apache Kafka aborts it. Every point is a moment a kill can land.
KILLS = ("before_commits:2", "primary_committed:3", "batch_closed:4", "secondaries_committed:2", "decoded:3")


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
    commits = []
    for attempt, fault in enumerate(KILLS):
        log = tmp_path / f"worker-{attempt}.log"
        killed_at(services, fault, app_id=unique, args=args, log=log, topology=TOPOLOGY)
        commits.append(_commits(services, positions_topic))
    assert commits[-1] > commits[0] > 0, commits  # the killed workers committed between their deaths
    run_worker(services, app_id=unique, args=args, log=tmp_path / "final.log", topology=TOPOLOGY)

    messages = read_committed(services, out, partitions=2, timeout_s=60)
    rows = pa.Table.from_pylist([orjson.loads(m.value()) for m in messages])
    assert_same_orders(rows, range(total))
    assert all(m.key() == str(orjson.loads(m.value())["id"]).encode() for m in messages)
