"""The Kafka sink against the local broker (Tansu): transactions, positions topic, fencing, DLQ."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import confluent_kafka as ck
import orjson
import pyarrow as pa
import pytest

from connectors.kafka import KafkaSink
from stream_etl import RunContext, Topology
from stream_etl.errors import ConfigurationError, SinkRejected
from stream_etl.records import SourcePartition
from stream_etl.runloop import RunLoop
from stream_etl.testing import ListSource
from tests.services import Services

P0, P1 = SourcePartition("orders", 0), SourcePartition("orders", 1)


def _ctx(services: Services, app_id: str) -> RunContext:
    return RunContext(app_id=app_id, settings=services.settings())


def _rows(ids: list[int]) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "tags": [["a"] for _ in ids]})


def read_committed(services: Services, topic: str, *, partitions: int = 1, timeout_s: float = 30.0) -> list[ck.Message]:
    """Every committed record of ``topic``, read to the end of each partition."""
    consumer = ck.Consumer(
        {
            "bootstrap.servers": services.kafka_bootstrap,
            "group.id": f"check-{topic}",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    found: list[ck.Message] = []
    try:
        consumer.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in range(partitions)])
        at_end: set[int] = set()
        import time

        deadline = time.monotonic() + timeout_s
        while len(at_end) < partitions:
            assert time.monotonic() < deadline, f"did not reach the end of {topic}"
            for message in consumer.consume(num_messages=10000, timeout=0.5):
                error = message.error()
                if error is not None and error.code() == ck.KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())
                elif error is None:
                    found.append(message)
    finally:
        consumer.close()
    return found


@pytest.fixture
def open_writer() -> Iterator[Callable[..., Any]]:
    opened: list[Any] = []

    def open_(sink: KafkaSink, ctx: RunContext) -> Any:
        writer = sink.open(ctx)
        opened.append(writer)
        return writer

    yield open_
    for writer in opened:
        try:
            writer.close()
        except ck.KafkaException:
            pass  # a fenced producer


def test_rows_and_positions_commit_in_one_transaction(
    services: Services, topic: Callable[..., str], unique: str, open_writer: Callable[..., Any]
) -> None:
    name = topic(partitions=1)
    writer = open_writer(KafkaSink(name, key="id"), _ctx(services, unique))
    assert writer.snapshot().position(P0) is None

    writer.commit(writer.snapshot(), _rows([1, 2, 3]), {P0: 9, P1: 4}, cursors={P0: "c9"})
    writer.commit(writer.snapshot(), None, {P0: 12}, cursors={P0: "c12"})

    messages = read_committed(services, name)
    assert [orjson.loads(m.value()) for m in messages] == [{"id": i, "tags": ["a"]} for i in (1, 2, 3)]
    assert [m.key() for m in messages] == [b"1", b"2", b"3"]
    again = open_writer(KafkaSink(name, key="id"), _ctx(services, unique))  # reads the positions topic back
    assert again.read_positions([P0, P1, SourcePartition("orders", 2)]) == {P0: 12, P1: 4}
    assert again.read_cursors([P0, P1]) == {P0: "c12"}
    other = open_writer(KafkaSink(name), _ctx(services, f"{unique}-other"))
    assert other.read_positions([P0]) == {}


def test_a_successor_resolves_a_dead_writers_transaction_and_fences_it(
    services: Services, topic: Callable[..., str], unique: str, open_writer: Callable[..., Any]
) -> None:
    name = topic(partitions=1)
    crashed = open_writer(KafkaSink(name, timeout_s=10), _ctx(services, unique))
    crashed.commit(crashed.snapshot(), _rows([1]), {P0: 0})
    crashed.producer.begin_transaction()  # as if SIGKILLed before the commit's flush: nothing sent
    crashed._produce_rows(_rows([2, 3]))

    successor = open_writer(KafkaSink(name, timeout_s=10), _ctx(services, unique))

    assert successor.read_positions([P0]) == {P0: 0}
    successor.commit(successor.snapshot(), _rows([2, 3]), {P0: 2})
    assert [orjson.loads(m.value())["id"] for m in read_committed(services, name)] == [1, 2, 3]
    with pytest.raises(ck.KafkaException) as raised:  # the zombie cannot commit what it held
        crashed.producer.commit_transaction(10)
    assert raised.value.args[0].code() == ck.KafkaError.PRODUCER_FENCED
    assert [orjson.loads(m.value())["id"] for m in read_committed(services, name)] == [1, 2, 3]
    assert successor.read_positions([P0]) == {P0: 2}


def test_a_zombie_writer_is_fenced(
    services: Services, topic: Callable[..., str], unique: str, open_writer: Callable[..., Any]
) -> None:
    name = topic(partitions=1)
    zombie = open_writer(KafkaSink(name, timeout_s=10), _ctx(services, unique))
    zombie.commit(zombie.snapshot(), _rows([1]), {P0: 0})
    owner = open_writer(KafkaSink(name, timeout_s=10), _ctx(services, unique))

    with pytest.raises(SinkRejected, match="fenced"):
        zombie.commit(zombie.snapshot(), _rows([2]), {P0: 1})

    owner.commit(owner.snapshot(), _rows([2]), {P0: 1})
    assert [orjson.loads(m.value())["id"] for m in read_committed(services, name)] == [1, 2]


def test_at_least_once_mode_without_transactions(
    services: Services, topic: Callable[..., str], unique: str, open_writer: Callable[..., Any]
) -> None:
    name = topic(partitions=1)
    writer = open_writer(KafkaSink(name, transactional=False, key="id"), _ctx(services, unique))
    writer.commit(writer.snapshot(), _rows([1, 2]), {P0: 1})
    assert [m.key() for m in read_committed(services, name)] == [b"1", b"2"]
    assert open_writer(KafkaSink(name, transactional=False), _ctx(services, unique)).read_positions([P0]) == {P0: 1}


def test_dead_letters_go_to_a_dead_letter_queue_with_headers(
    services: Services, topic: Callable[..., str], unique: str
) -> None:
    name = topic(partitions=1)
    records: list[object] = [{"id": 1}, b"oops", {"id": 2}]
    topology = Topology("kafka-out", dead_letters=KafkaSink.dead_letter_queue(f"{name}.dlq"))
    topology.source(ListSource(records)).sink(KafkaSink(name))
    summary = RunLoop(topology, RunContext(app_id=unique, settings=services.settings(), mode="until_caught_up")).run()

    assert [orjson.loads(m.value()) for m in read_committed(services, name)] == [{"id": 1}, {"id": 2}]
    (dead,) = read_committed(services, f"{name}.dlq")
    assert dead.value() == b"oops"
    headers = dict(dead.headers() or [])
    assert headers["step"] == b"decode" and headers["offset"] == b"1" and headers["topic"] == b"memory"
    assert summary.stats["dead_lettered"] == 1


def test_bad_configuration_fails_fast() -> None:
    with pytest.raises(ConfigurationError, match="managed"):
        KafkaSink("t", options={"transactional.id": "x"})
    with pytest.raises(ConfigurationError, match="bootstrap"):
        KafkaSink("t").open(RunContext(app_id="x"))
