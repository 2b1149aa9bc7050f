"""The native record path (connectors/kafka/native.py, _native.c) against the real local broker."""

from __future__ import annotations

import time
from collections.abc import Callable

import confluent_kafka as ck
import pyarrow as pa
import pytest

from connectors.kafka import KafkaSource, native
from connectors.kafka.admin import produce
from stream_etl import RunContext, Topology
from stream_etl.rawvalues import RawValues
from stream_etl.records import Chunk, PartitionRegistry, SourcePartition
from stream_etl.runloop import RunLoop
from stream_etl.samples import orders
from stream_etl.testing import MemorySink
from tests.services import Services


def test_the_extension_is_built_here() -> None:
    """setup.py builds it optionally; on a machine with a C compiler (this one) it must be there."""
    assert native._native is not None, "connectors/kafka/_native.c did not build: see the pip install log"
    assert native.available(["topic", "partition", "offset", "timestamp", "key"])
    assert not native.available(["headers"])  # headers go through the Message API


def _read(
    services: Services, name: str, app_id: str, monkeypatch: pytest.MonkeyPatch, *, native_path: bool
) -> tuple[pa.Table, pa.Table]:
    monkeypatch.setenv("STREAM_ETL_KAFKA_NATIVE", "1" if native_path else "0")
    sink, dead = MemorySink("out"), MemorySink("dead")
    topology = Topology("native-test", dead_letters=dead)
    source = KafkaSource(name, assignment="direct", metadata=["partition", "offset", "timestamp", "key"])
    topology.source(source).sink(sink)
    ctx = RunContext(app_id=app_id, settings=services.settings(), mode="until_caught_up")
    summary = RunLoop(topology, ctx).run()
    assert summary.caught_up
    return sink.table().sort_by([("_partition", "ascending"), ("_offset", "ascending")]), dead.table()


def test_both_paths_read_the_same_rows_keys_timestamps_and_dead_letters(
    services: Services, topic: Callable[..., str], unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = topic(partitions=3)
    values: list[bytes | None] = list(orders(3000))
    values[10] = None  # a tombstone: dead-lettered with its position
    values[20] = b"{not json"
    keys: list[bytes | None] = [str(i % 50).encode() if i % 7 else None for i in range(3000)]
    produce(services.kafka_bootstrap, name, values, keys=keys)

    fast, fast_dead = _read(services, name, f"{unique}-n", monkeypatch, native_path=True)
    slow, slow_dead = _read(services, name, f"{unique}-p", monkeypatch, native_path=False)

    assert fast.num_rows == 2998
    assert fast.equals(slow)
    assert fast_dead.num_rows == slow_dead.num_rows == 2
    assert sorted(fast_dead["raw"].to_pylist(), key=str) == sorted(slow_dead["raw"].to_pylist(), key=str)
    assert fast["_key"].null_count == sum(1 for i in range(3000) if not i % 7 and i not in (10, 20))


def _consumer(services: Services, unique: str) -> ck.Consumer:
    return ck.Consumer({"bootstrap.servers": services.kafka_bootstrap, "group.id": unique, "enable.auto.commit": False})


def _drain(records: native.NativeRecords, want: int, timeout_s: float) -> list[Chunk]:
    chunks: list[Chunk] = []
    deadline = time.monotonic() + timeout_s
    while sum(map(len, chunks)) < want and time.monotonic() < deadline:
        chunk, errors = records.poll(1000, 0.1)
        assert not errors
        if chunk is not None:
            chunks.append(chunk)
    return chunks


def test_records_come_column_wise_and_the_consumer_queue_stays_empty(
    services: Services, topic: Callable[..., str], unique: str
) -> None:
    name = topic(partitions=2)
    # keyed: the sticky partitioner can put 500 unkeyed small records all in one partition
    produce(services.kafka_bootstrap, name, orders(500), keys=[b"%d" % i for i in range(500)])
    consumer = _consumer(services, unique)
    registry = PartitionRegistry()
    registry.id_of(SourcePartition("another-topic", 0))  # ids need not be partition numbers
    records = native.NativeRecords(consumer, registry, timestamps=True, keys=False)
    try:
        records.forward([(name, 1), (name, 0)])
        consumer.assign([ck.TopicPartition(name, p, ck.OFFSET_BEGINNING) for p in (0, 1)])

        chunks = _drain(records, 500, 15)

        assert consumer.poll(0.2) is None  # nothing bypassed the native queue
        assert all(isinstance(c.values, RawValues) for c in chunks)
        assert all(c.values.objects for c in chunks)  # every order is one JSON object: no scan needed
        got = sorted(v for c in chunks for v in c.values if v is not None)
        assert got == sorted(orders(500))
        pairs = {(p, o) for c in chunks for p, o in zip(c.pids.to_pylist(), c.positions.to_pylist(), strict=True)}
        assert len(pairs) == 500
        assert {p for p, _ in pairs} == {
            registry.id_of(SourcePartition(name, 0)),
            registry.id_of(SourcePartition(name, 1)),
        }
        assert {p for p, _ in pairs} == {1, 2}
        assert all(stamp > 0 for c in chunks for stamp in c.metadata["timestamp"].to_pylist())
    finally:
        records.close()
        consumer.close()


def test_a_fetch_stop_that_clears_the_forwarding_is_healed(
    services: Services, topic: Callable[..., str], unique: str
) -> None:
    """An unassign clears a partition's forwarding when its fetch stops; assigned again without
    a forward, its records wait in the partition's own queue until heal() forwards it again."""
    name = topic(partitions=1)
    produce(services.kafka_bootstrap, name, orders(200))
    consumer = _consumer(services, unique)
    records = native.NativeRecords(consumer, PartitionRegistry(), timestamps=False, keys=False)
    try:
        records.forward([(name, 0)])
        consumer.assign([ck.TopicPartition(name, 0, ck.OFFSET_BEGINNING)])
        assert sum(map(len, _drain(records, 200, 15))) == 200
        consumer.unassign()
        time.sleep(0.5)  # the fetch stop lands
        consumer.assign([ck.TopicPartition(name, 0, 0)])

        stuck = _drain(records, 200, 1.5)
        assert not stuck  # neither here...
        assert consumer.poll(0.2) is None  # ...nor on the consumer queue

        records.heal()
        healed = _drain(records, 200, 15)
        assert sorted(v for c in healed for v in c.values if v is not None) == sorted(orders(200))
    finally:
        records.close()
        consumer.close()


def test_a_consumer_that_is_not_a_confluent_consumer_is_refused() -> None:
    with pytest.raises(TypeError, match="confluent_kafka.Consumer"):
        native.NativeRecords(ck.TopicPartition("t", 0), PartitionRegistry(), timestamps=False, keys=False)


def test_a_chunk_with_a_value_that_is_not_an_object_says_so(
    services: Services, topic: Callable[..., str], unique: str
) -> None:
    name = topic(partitions=1)
    produce(services.kafka_bootstrap, name, [b'{"id":1}', b"not json", b"{}", b"[1]"])
    consumer = _consumer(services, unique)
    records = native.NativeRecords(consumer, PartitionRegistry(), timestamps=False, keys=False)
    try:
        records.forward([(name, 0)])
        consumer.assign([ck.TopicPartition(name, 0, ck.OFFSET_BEGINNING)])

        chunks = _drain(records, 4, 15)

        assert [v for c in chunks for v in c.values] == [b'{"id":1}', b"not json", b"{}", b"[1]"]
        assert not any(c.values.objects for c in chunks if b"not json" in list(c.values))
    finally:
        records.close()
        consumer.close()
