"""The Kafka source against the real local broker, with in-memory sinks to observe it.

Every test that reads runs once per Kafka client (``kafka_client``: confluent-kafka, aiokafka)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from pydantic import SecretStr

from connectors.kafka import KafkaSource
from connectors.kafka.admin import produce
from stream_etl import RunContext, Topology
from stream_etl.errors import ConfigurationError, SourceMissing, SourceUnavailable
from stream_etl.records import SourcePartition
from stream_etl.runloop import RunLoop, RunSummary
from stream_etl.samples import orders
from stream_etl.sources import AssignmentListener
from stream_etl.testing import MemorySink
from tests.e2e.workers import produce_around_a_cut
from tests.services import Services


def _run(
    services: Services, source: KafkaSource, app_id: str, sink: MemorySink | None = None
) -> tuple[RunSummary, MemorySink]:
    sink = sink or MemorySink("out")
    topology = Topology("kafka-test", dead_letters=MemorySink("dead"))
    topology.source(source).sink(sink)
    ctx = RunContext(app_id=app_id, settings=services.settings(), mode="until_caught_up")
    return RunLoop(topology, ctx).run(), sink


def test_reads_every_record_with_metadata_columns(
    services: Services, kafka_client: str, topic: Callable[..., str], unique: str
) -> None:
    name = topic(partitions=3)
    keys = [str(i).encode() for i in range(300)]
    produce(services.kafka_bootstrap, name, orders(300), keys=keys)
    source = KafkaSource(
        name, client=kafka_client, metadata=["topic", "partition", "offset", "timestamp", "key", "headers"]
    )

    summary, sink = _run(services, source, unique)

    table = sink.table()
    assert summary.caught_up and table.num_rows == 300
    assert set(table["_topic"].to_pylist()) == {name}
    assert table.schema.field("_partition").type == pa.int32()
    assert table.schema.field("_timestamp").type == pa.timestamp("ms", tz="UTC")
    pairs = list(zip(table["_partition"].to_pylist(), table["_offset"].to_pylist(), strict=True))
    assert len(set(pairs)) == 300
    assert sorted(table["_key"].to_pylist()) == sorted(keys)
    assert all(k == str(i).encode() for k, i in zip(table["_key"].to_pylist(), table["id"].to_pylist(), strict=True))
    now = datetime.now(UTC)
    assert all(now - timedelta(minutes=5) < t <= now for t in table["_timestamp"].to_pylist())


def test_a_second_run_resumes_from_the_sinks_positions(
    services: Services, kafka_client: str, topic: Callable[..., str], unique: str
) -> None:
    name = topic(partitions=2)
    produce(services.kafka_bootstrap, name, orders(100))
    sink = MemorySink("out")
    _run(services, KafkaSource(name, client=kafka_client, assignment="direct"), unique, sink)
    produce(services.kafka_bootstrap, name, orders(50, start=100))

    summary, _ = _run(services, KafkaSource(name, client=kafka_client, assignment="direct"), unique, sink)

    assert summary.stats["records_in"] == 50
    assert sorted(sink.table()["id"].to_pylist()) == list(range(150))


def test_start_from_latest_skips_what_was_there(
    services: Services, kafka_client: str, topic: Callable[..., str], unique: str
) -> None:
    name = topic(partitions=2)
    produce(services.kafka_bootstrap, name, orders(100))

    summary, sink = _run(
        services, KafkaSource(name, client=kafka_client, start_from="latest", assignment="direct"), unique
    )

    assert summary.caught_up
    assert sink.table().num_rows == 0


def test_start_from_a_timestamp(services: Services, kafka_client: str, topic: Callable[..., str], unique: str) -> None:
    name = topic(partitions=2)
    cut = produce_around_a_cut(services, name, 100, 20)

    _, sink = _run(services, KafkaSource(name, client=kafka_client, start_from=cut, assignment="direct"), unique)

    assert sorted(sink.table()["id"].to_pylist()) == list(range(100, 120))


def test_direct_assignment_does_not_wait_for_a_group_join(
    services: Services, kafka_client: str, topic: Callable[..., str], unique: str
) -> None:
    name = topic(partitions=4)
    produce(services.kafka_bootstrap, name, orders(1000))
    started = time.monotonic()

    _, sink = _run(services, KafkaSource(name, client=kafka_client, assignment="direct"), unique)

    assert sink.table().num_rows == 1000
    assert time.monotonic() - started < 2.5  # a group join alone takes ~3 s on Tansu


def test_a_missing_topic_is_a_clear_error(services: Services, kafka_client: str, unique: str) -> None:
    with pytest.raises(SourceMissing, match="does not exist"):
        _run(services, KafkaSource(f"missing-{unique}", client=kafka_client), unique)


def test_an_unreachable_broker_is_a_clear_error(services: Services, kafka_client: str, unique: str) -> None:
    source = KafkaSource("orders", bootstrap_servers="127.0.0.1:1", connect_timeout_s=2, client=kafka_client)
    with pytest.raises(SourceUnavailable, match="cannot reach Kafka at 127.0.0.1:1"):
        _run(services, source, unique)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"topic": "bad topic"}, "not a valid Kafka topic"),
        ({"topic": "t", "assignment": "sometimes"}, "assignment"),
        ({"topic": "t", "options": {"enable.auto.commit": "true"}}, "managed by stream-etl"),
        ({"topic": "t", "start_from": "yesterday"}, "start_from"),
    ],
    ids=["topic-name", "assignment", "owned-option", "start-from"],
)
def test_bad_settings_fail_fast(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        KafkaSource(**kwargs)  # type: ignore[arg-type]


def test_a_source_reads_the_union_of_several_topics(
    services: Services, kafka_client: str, topic: Callable[..., str], unique: str
) -> None:
    first, second = topic(partitions=2, suffix="-a"), topic(partitions=3, suffix="-b")
    produce(services.kafka_bootstrap, first, orders(50))
    produce(services.kafka_bootstrap, second, orders(30, start=50))
    sink = MemorySink("out")

    summary, _ = _run(
        services,
        KafkaSource([first, second], client=kafka_client, assignment="direct", metadata=["topic"]),
        unique,
        sink,
    )
    produce(services.kafka_bootstrap, second, orders(5, start=80))
    again, _ = _run(
        services,
        KafkaSource([first, second], client=kafka_client, assignment="direct", metadata=["topic"]),
        unique,
        sink,
    )

    table = sink.table()
    assert sorted(table["id"].to_pylist()) == list(range(85))
    assert {t: table["_topic"].to_pylist().count(t) for t in (first, second)} == {first: 50, second: 35}
    assert (summary.stats["records_in"], again.stats["records_in"]) == (80, 5)


def test_security_settings_reach_librdkafka(services: Services, topic: Callable[..., str], unique: str) -> None:
    """STREAM_ETL_KAFKA_* security settings are in the consumer's config, the run still works
    (PLAINTEXT here: the embedded Tansu build serves neither TLS nor SASL, see docs/SECURITY.md),
    and the password shows nowhere."""
    name = topic(partitions=1)
    produce(services.kafka_bootstrap, name, orders(10))
    settings = services.settings().model_copy(
        update={
            "kafka_security_protocol": "PLAINTEXT",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": "etl",
            "kafka_sasl_password": SecretStr("sasl-secret-123"),
        }
    )
    ctx = RunContext(app_id=unique, settings=settings, mode="until_caught_up")
    reader = KafkaSource(name).open(ctx, _Listener())
    try:
        assert {k: reader.client_config[k] for k in ("security.protocol", "sasl.mechanism", "sasl.username")} == {
            "security.protocol": "PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "etl",
        }
        assert reader.client_config["sasl.password"] == "sasl-secret-123"
        assert "sasl-secret-123" not in repr(reader)
    finally:
        reader.close()
    topology = Topology("kafka-security", dead_letters=MemorySink("dead"))
    sink = MemorySink("out")
    topology.source(KafkaSource(name)).sink(sink)
    RunLoop(topology, ctx).run()
    assert sink.table().num_rows == 10


def test_tls_settings_are_used_for_the_connection(services: Services, topic: Callable[..., str], unique: str) -> None:
    """With security.protocol=SSL the client speaks TLS to the (plaintext) broker and fails: the setting took effect."""
    name = topic(partitions=1)
    settings = services.settings().model_copy(update={"kafka_security_protocol": "SSL"})
    ctx = RunContext(app_id=unique, settings=settings)

    with pytest.raises(SourceUnavailable, match="cannot reach Kafka"):
        KafkaSource(name, connect_timeout_s=3, options={"log_level": "0"}).open(ctx, _Listener())


class _Listener(AssignmentListener):
    """Nothing is assigned in these tests: the reader is only opened and closed."""

    def on_assigned(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, int]:
        return {}

    def on_revoked(self, partitions: Sequence[SourcePartition]) -> None:
        return None

    def resume_cursors(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, str]:
        return {}


def test_options_holding_secrets_are_redacted_in_the_config_repr() -> None:
    source = KafkaSource("t", options={"sasl.password": "opt-secret", "client.rack": "r1"})

    assert "opt-secret" not in repr(source.config) and "opt-secret" not in str(source.config)
    assert "client.rack" in repr(source.config)
    assert source.config.options["sasl.password"] == "opt-secret"
