"""The sources and sinks the connector contract suite runs over (tests/connectors/test_contract.py).

A **source case** makes a fresh stream, appends raw records to it, and builds the
:class:`~stream_etl.sources.Source` (and the worker arguments) that read it. A **sink case**
makes a fresh destination, builds the :class:`~stream_etl.sinks.Sink` writing to it, and reads
back what was committed (ids, in the order stored, so duplicates show) and the dead letters'
raw bytes.

Adding a connector is adding a case to ``SOURCES`` or ``SINKS``: a source case's stream has
``append``, ``source``, ``settings``, ``worker_args`` and ``worker_env``; contract_topology.py
builds the worker's source from ``worker_args``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from connectors.delta import DeltaSink
from connectors.kafka import KafkaSink, KafkaSource
from connectors.kafka.admin import ensure_topic, produce
from connectors.kinesis import KinesisSource
from connectors.kinesis.admin import create_stream, kinesis_client, put_records
from connectors.parquet import ParquetSink
from connectors.parquet import read_table as read_parquet
from connectors.postgres import PostgresSink
from stream_etl.errors import PositionConflict, SinkRejected
from stream_etl.settings import Settings
from stream_etl.sinks import Sink
from stream_etl.sources import Source
from tests.services import Services, drop_postgres_table

CONTRACT_SCHEMA = pa.schema(
    [("id", pa.int64()), ("user", pa.string()), ("amount", pa.float64()), ("country", pa.string())]
)
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def build_sink(kind: str, target: str, *, dsn: str = "") -> Sink:
    """The sink of ``kind`` writing to ``target`` (also used by the worker topology)."""
    if kind == "delta":
        return DeltaSink(target)
    if kind == "postgres":
        return PostgresSink(target, dsn=dsn or PG_DSN)
    if kind == "parquet":
        return ParquetSink(target)
    if kind == "kafka":
        return KafkaSink(target, key="id", timeout_s=30)
    msg = f"unknown sink kind {kind!r}"
    raise ValueError(msg)


# Sources ---------------------------------------------------------------------------------


@dataclass
class KafkaStream:
    """One fresh topic, read with one Kafka client."""

    services: Services
    topic: str
    client: str

    def append(self, values: Iterable[bytes]) -> None:
        produce(self.services.kafka_bootstrap, self.topic, values)

    def source(self, *, start_from: str = "earliest") -> Source:
        return KafkaSource(self.topic, client=self.client, start_from=start_from, assignment="direct")  # type: ignore[arg-type]

    def worker_args(self) -> dict[str, str]:
        return {"source": "kafka", "topic": self.topic, "client": self.client}

    def worker_env(self) -> dict[str, str]:
        return {}

    def settings(self) -> Settings:
        return self.services.settings()


@dataclass
class KinesisStream:
    """One fresh kinesalite stream of two shards; shard leases in a local directory."""

    services: Services
    kinesis: Any
    name: str
    leases: str

    def append(self, values: Iterable[bytes]) -> None:
        client = kinesis_client(self.kinesis.endpoint)
        try:
            put_records(client, self.name, values)
        finally:
            client.close()

    def source(self, *, start_from: str = "earliest") -> Source:
        return KinesisSource(
            self.name,
            start_from=start_from,
            lease_uri=self.leases,
            idle_poll=timedelta(milliseconds=50),  # type: ignore[arg-type]
        )

    def worker_args(self) -> dict[str, str]:
        return {"source": "kinesis", "topic": self.name, "leases": self.leases}

    def worker_env(self) -> dict[str, str]:
        return dict(self.kinesis.environment())

    def settings(self) -> Settings:
        return Settings.from_environment({**self.services.environment(), **self.kinesis.environment()})


@dataclass(frozen=True)
class SourceCase:
    name: str
    make: Callable[[Services, str, Path, Any], Any]


def _kafka(client: str) -> SourceCase:
    def make(services: Services, unique: str, tmp: Path, request: Any) -> KafkaStream:
        topic = f"c-{unique}"
        ensure_topic(services.kafka_bootstrap, topic, partitions=2)
        return KafkaStream(services, topic, client)

    return SourceCase(f"kafka-{client}", make)


def _kinesis(services: Services, unique: str, tmp: Path, request: Any) -> KinesisStream:
    kinesis = request.getfixturevalue("kinesis")  # kinesalite, started for the session on first use
    client = kinesis_client(kinesis.endpoint)
    try:
        create_stream(client, f"c-{unique}", shards=2)
    finally:
        client.close()
    return KinesisStream(services, kinesis, f"c-{unique}", str(tmp / "leases"))


#: Every source the suite runs over.
SOURCES = [_kafka("confluent"), _kafka("aiokafka"), SourceCase("kinesis", _kinesis)]


# Sinks -------------------------------------------------------------------------------------


@dataclass
class Destination:
    """One fresh destination of one sink kind."""

    services: Services
    kind: str
    target: str
    #: What a stale writer's commit raises: PositionConflict, or the sink's equivalent.
    fenced: tuple[type[Exception], ...] = (PositionConflict,)

    def sink(self) -> Sink:
        return build_sink(self.kind, self.target)

    def worker_args(self) -> dict[str, str]:
        return {"sink": self.kind, "target": self.target}

    def ids(self) -> list[int]:
        """Committed ids in stored order (a duplicate shows twice)."""
        table = self._read(self.target, "id")
        return [] if table is None else table

    def dead_raw(self) -> list[bytes]:
        table = self._read(self._dead_target(), "raw")
        return [] if table is None else table

    def _dead_target(self) -> str:
        if self.kind == "kafka":
            return f"{self.target}.dead-letters"
        return f"{self.target}_dead_letters"

    def _read(self, target: str, column: str) -> list[Any] | None:
        if self.kind == "delta":
            try:
                table = DeltaTable(target, storage_options=self.services.storage_options()).to_pyarrow_table()
            except TableNotFoundError:
                return None
            return list(table[column].to_pylist())
        if self.kind == "parquet":
            found = read_parquet(target, self.services.settings())
            return None if found is None else list(found[column].to_pylist())
        if self.kind == "postgres":
            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                exists = conn.execute("SELECT to_regclass(%s)", (f'"{target}"',)).fetchone()
                if exists is None or exists[0] is None:
                    return None
                rows = conn.execute(f'SELECT "{column}" FROM "{target}"').fetchall()  # noqa: S608 - test-made names
            return [bytes(r[0]) if isinstance(r[0], memoryview) else r[0] for r in rows]
        from tests.connectors.kafka.test_sink import read_committed

        try:
            messages = read_committed(self.services, target, timeout_s=30)
        except AssertionError:
            return None  # the topic holds nothing yet
        if column == "raw":
            return [m.value() for m in messages]
        return [orjson.loads(m.value())["id"] for m in messages]

    def cleanup(self) -> None:
        if self.kind == "postgres":
            drop_postgres_table(PG_DSN, self.target)


@dataclass(frozen=True)
class SinkCase:
    name: str
    make: Callable[[Services, str, Path], Destination]


def _delta(services: Services, unique: str, tmp: Path) -> Destination:
    return Destination(services, "delta", f"s3://{services.bucket}/{unique}/contract")


def _postgres(services: Services, unique: str, tmp: Path) -> Destination:
    return Destination(services, "postgres", f"c_{uuid.uuid4().hex[:12]}")


def _parquet(services: Services, unique: str, tmp: Path) -> Destination:
    # Local disk: the Parquet sink fences concurrent commits there only (docs/SINKS.md).
    return Destination(services, "parquet", str(tmp / "files"))


def _kafka_sink(services: Services, unique: str, tmp: Path) -> Destination:
    topic = f"c-{unique}-out"
    ensure_topic(services.kafka_bootstrap, topic, partitions=1)
    # A second writer with the same transactional id fences the first: its commit is refused.
    return Destination(services, "kafka", topic, fenced=(PositionConflict, SinkRejected))


#: Every sink the suite runs over.
SINKS = [
    SinkCase("delta", _delta),
    SinkCase("postgres", _postgres),
    SinkCase("parquet", _parquet),
    SinkCase("kafka", _kafka_sink),
]
