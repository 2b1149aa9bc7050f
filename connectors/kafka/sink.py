"""Kafka sink on confluent-kafka: rows and source positions in one Kafka transaction.

Each commit is one transaction of a transactional (hence idempotent) producer: the
batch's rows, as JSON objects, to the sink's topic, and one record per source partition
to a compacted positions topic (key ``[app id, stream, partition]``, value
``{"position": ..., "cursor": ...}``). A ``read_committed`` consumer sees both or
neither. On open the writer calls ``init_transactions`` with the transactional id
``stream-etl-<app id>-<topic>``, which resolves whatever transaction a previous instance
(a SIGKILLed worker) left open and fences that instance; then it reads the positions
topic back (``read_committed``) to learn where the job stands, and again whenever
partitions are assigned.

One transactional id per job and topic means one worker writes a Kafka sink at a time:
a second worker fences the first, which stops with ``SinkRejected``. Run one worker
(``KafkaSource(assignment="direct")``).

Apache Kafka *aborts* the open transaction of a fenced producer. The local broker
(Tansu 0.6) *commits* it instead, and never expires open transactions. So the writer
keeps a transaction all-or-nothing on the wire as far as a client can: nothing is sent
before the commit (``linger.ms`` is long; the commit's flush sends everything at once),
and the positions are produced last. What Tansu can still publish after a SIGKILL is a
transaction whose sends were cut between two produce requests, a window of
microseconds. Batches larger than the producer queue (``queue.buffering.max.messages``)
are sent in parts and widen it.

``transactional=False`` is for brokers without transactions: rows are produced and
flushed by an idempotent producer, then the positions; a crash between the two re-sends
the batch on restart, so consumers see each row at least once and should de-duplicate
on the message key (``key=``), which is deterministic for a given source record.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from connectors.kafka.positions import ensure_topics, read_positions_topic
from stream_etl.catalog import TableCommit, adds_columns, tell_catalog
from stream_etl.context import RunContext
from stream_etl.dead_letters import DEAD_LETTER_SCHEMA
from stream_etl.errors import ConfigurationError, SinkRejected, SinkUnavailable
from stream_etl.records import LINEAGE, SourcePartition
from stream_etl.sinks import CommitInfo, Sink, SinkWriter

try:
    import confluent_kafka as ck
except ImportError as exc:  # pragma: no cover - depends on the install
    msg = "the Kafka connector needs confluent-kafka: pip install 'stream-etl[kafka]'"
    raise ImportError(msg) from exc

log = logging.getLogger(__name__)

#: Producer settings the sink owns: every commit relies on them.
_OWNED = ("transactional.id", "enable.idempotence", "acks")
_PRODUCER_DEFAULTS = {
    "compression.type": "lz4",
    "batch.size": "1048576",
    # Nothing leaves before the commit's flush: a transaction goes out in one burst.
    "linger.ms": "10000",
    "queue.buffering.max.messages": "2000000",
    "queue.buffering.max.kbytes": "2097152",
}
#: Dead-letter columns sent as headers of a dead-letter queue's records (the value is ``raw``).
DEAD_LETTER_HEADERS = tuple(n for n in DEAD_LETTER_SCHEMA.names if n != "raw")


class KafkaSink(Sink):
    """Produce rows to the Kafka topic ``topic`` as JSON objects, exactly once.

    ``key`` names a column whose value (as text) becomes the message key.
    ``value_column`` sends that binary column as the value instead of JSON, and
    ``header_columns`` adds those columns as headers (the dead-letter queue's shape,
    see :meth:`dead_letter_queue`). Topics missing on the broker are created with
    ``partitions`` partitions. ``options`` go to librdkafka as they are.
    """

    def __init__(
        self,
        topic: str,
        *,
        bootstrap_servers: str | None = None,
        key: str | None = None,
        value_column: str | None = None,
        header_columns: Sequence[str] = (),
        transactional: bool = True,
        positions_topic: str | None = None,
        partitions: int = 1,
        options: Mapping[str, str] | None = None,
        timeout_s: float = 60.0,
        name: str | None = None,
    ) -> None:
        if not topic:
            msg = "KafkaSink needs a topic name"
            raise ConfigurationError(msg)
        owned = [k for k in (options or {}) if k in _OWNED]
        if owned:
            msg = f"{owned} are managed by the Kafka sink (exactly-once needs them); remove them from options"
            raise ConfigurationError(msg)
        if partitions < 1:
            msg = f"partitions must be at least 1, got {partitions}"
            raise ConfigurationError(msg)
        self.topic = topic
        self.bootstrap_servers = bootstrap_servers
        self.key = key
        self.value_column = value_column
        self.header_columns = tuple(header_columns)
        self.transactional = transactional
        self.positions_topic = positions_topic or f"{topic}.stream-etl-positions"
        self.partitions = partitions
        self.options = {str(k): str(v) for k, v in (options or {}).items()}
        self.timeout_s = timeout_s
        self.name = name

    @classmethod
    def dead_letter_queue(cls, topic: str, **kwargs: Any) -> KafkaSink:
        """A dead-letter queue: each record's raw bytes as the value; step, error, source
        topic/partition/offset and time as headers (Kafka Connect's DLQ shape)."""
        return cls(topic, value_column="raw", header_columns=DEAD_LETTER_HEADERS, **kwargs)

    def describe(self) -> str:
        how = "transactions" if self.transactional else "at least once"
        return f"kafka topic {self.topic} ({how})"

    def default_name(self) -> str:
        return self.name or self.topic

    def default_dead_letters(self) -> KafkaSink:
        return KafkaSink.dead_letter_queue(
            f"{self.topic}.dead-letters",
            bootstrap_servers=self.bootstrap_servers,
            transactional=self.transactional,
            options=self.options,
            timeout_s=self.timeout_s,
            name=f"{self.default_name()}_dead_letters",
        )

    def open(self, ctx: RunContext) -> KafkaWriter:
        return KafkaWriter(self, ctx)


@dataclass(frozen=True, slots=True)
class KafkaSnapshot:
    positions: dict[tuple[str, str], int]

    def position(self, partition: SourcePartition) -> int | None:
        return self.positions.get(_key(partition))


def _key(partition: SourcePartition) -> tuple[str, str]:
    return partition.stream, str(partition.partition)


class KafkaWriter(SinkWriter):
    stores_cursors = True

    def __init__(self, sink: KafkaSink, ctx: RunContext) -> None:
        self.sink = sink
        self.app_id = ctx.app_id
        bootstrap = sink.bootstrap_servers or ctx.settings.kafka_bootstrap_servers
        if not bootstrap:
            msg = (
                "no Kafka bootstrap servers for the Kafka sink: set STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS, pass "
                "KafkaSink(bootstrap_servers=...), or start the local stack with `stream-etl dev up`"
            )
            raise ConfigurationError(msg)
        self.common: dict[str, Any] = {**ctx.settings.kafka_config(), "bootstrap.servers": bootstrap}
        self.transactional_id = f"stream-etl-{ctx.app_id}-{sink.topic}"
        created = ensure_topics(self.common, {sink.topic: sink.partitions}, sink.positions_topic, sink.timeout_s)
        self.catalog = ctx.catalog
        #: For the catalog: whether this writer created the topic, and the columns it has produced so far
        #: (a topic keeps no schema; the catalog adds what each writer reports).
        self._created_topic = sink.topic in created
        self._produced: pa.Schema | None = None
        self._names: set[str] | None = None  # every column name seen, all-null ones too
        config: dict[str, Any] = {
            **_PRODUCER_DEFAULTS,
            **self.common,
            **sink.options,
            "enable.idempotence": True,
            "acks": "all",
        }
        if sink.transactional:
            config["transactional.id"] = self.transactional_id
        self.producer = ck.Producer(config)
        self._failures: list[ck.KafkaError] = []
        if sink.transactional:
            try:
                self.producer.init_transactions(sink.timeout_s)  # resolves and fences a previous instance
            except ck.KafkaException as exc:
                msg = f"starting transactions on {bootstrap} failed ({exc.args[0]}); a broker without transactions needs KafkaSink(transactional=False)"
                raise SinkUnavailable(msg, table_uri=sink.topic) from exc
        self._positions: dict[tuple[str, str], tuple[int, str | None]] = read_positions_topic(
            self.common, sink.positions_topic, ctx.app_id, sink.timeout_s
        )

    # Setup -------------------------------------------------------------------------------

    # Positions ---------------------------------------------------------------------------

    def read_positions(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, int]:
        """Re-read from the positions topic: after a rebalance another worker may have moved them."""
        self._positions = stored = read_positions_topic(
            self.common, self.sink.positions_topic, self.app_id, self.sink.timeout_s
        )
        return {sp: stored[_key(sp)][0] for sp in partitions if _key(sp) in stored}

    def read_cursors(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, str]:
        stored = self._positions
        return {sp: c for sp in partitions if (c := stored.get(_key(sp), (0, None))[1]) is not None}

    def snapshot(self) -> KafkaSnapshot:
        """The positions this writer knows: its own commits over what it last read (at open
        and on assignment). It is the only writer (init_transactions fenced any other)."""
        return KafkaSnapshot({k: v[0] for k, v in self._positions.items()})

    # Commit --------------------------------------------------------------------------------

    def conform(self, table: pa.Table, snapshot: Any) -> pa.Table:
        missing = [
            c
            for c in (self.sink.key, self.sink.value_column, *self.sink.header_columns)
            if c and c not in table.column_names
        ]
        if missing:
            msg = f"column(s) {missing} named by the Kafka sink for {self.sink.topic} are missing from the rows"
            raise ConfigurationError(msg)
        return table

    def commit(
        self,
        snapshot: Any,
        table: pa.Table | None,
        positions: dict[SourcePartition, int],
        *,
        cursors: Mapping[SourcePartition, str] | None = None,
    ) -> CommitInfo:
        cursors = cursors or {}
        transactional = self.sink.transactional
        self._failures.clear()
        rows = 0
        try:
            if transactional:
                self.producer.begin_transaction()
            rows = self._produce_rows(table) if table is not None and table.num_rows else 0
            if not transactional:
                self._flush()  # rows first: a crash before the positions re-sends them (at least once)
            for sp, position in positions.items():
                stream, part = _key(sp)
                value = {"position": position, "cursor": cursors.get(sp)}
                self._produce(
                    self.sink.positions_topic, json.dumps(value), json.dumps([self.app_id, stream, part]), None
                )
            if transactional:
                self._commit_transaction()
            else:
                self._flush()
        except ck.KafkaException as exc:
            self._fail(exc.args[0], transactional)
        if self._failures:
            self._fail(self._failures[0], transactional)
        for sp, position in positions.items():
            self._positions[_key(sp)] = (position, cursors.get(sp))
        if self.catalog is not None and table is not None and rows:
            if self._names is None or adds_columns(table.column_names, self._names):
                self._names = {*(self._names or ()), *table.column_names}
                written = table
                tell_catalog(self.catalog, self.sink.topic, lambda: self._table_commit(written))
        return CommitInfo(rows=rows)

    def _table_commit(self, table: pa.Table) -> TableCommit:
        """The columns produced so far (with ``table``'s), for the catalog at ``kafka://<topic>``
        (the location a Kafka crawler gives the topic, so both name one table)."""
        fields = [f for f in table.schema if f.name != LINEAGE and not pa.types.is_null(f.type)]
        created = self._produced is None and self._created_topic
        self._produced = pa.unify_schemas([s for s in (self._produced, pa.schema(fields)) if s is not None])
        return TableCommit(
            location=f"kafka://{self.sink.topic}",
            format="binary" if self.sink.value_column else "json",
            schema=self._produced,
            created=created,
            app_id=self.app_id,
            partial_schema=True,
        )

    def _commit_transaction(self) -> None:
        """Commit, retrying a retriable failure as librdkafka asks: a commit that timed out may have
        landed, so it is committed again, never aborted and re-sent (that would publish the batch twice)."""
        deadline = time.monotonic() + self.sink.timeout_s
        while True:
            try:
                self.producer.commit_transaction(max(1.0, deadline - time.monotonic()))
                return
            except ck.KafkaException as exc:
                error: ck.KafkaError = exc.args[0]
                if error.txn_requires_abort() or not error.retriable():
                    raise
                if time.monotonic() >= deadline:
                    msg = (
                        f"committing the transaction on {self.sink.topic} did not finish in {self.sink.timeout_s} s "
                        f"({error}); the worker stops so that a restart resolves it (init_transactions)"
                    )
                    raise SinkRejected(msg, table_uri=self.sink.topic) from exc
                log.warning("committing the transaction on %s: %s; retrying the commit", self.sink.topic, error)

    def _fail(self, error: ck.KafkaError, transactional: bool) -> None:
        fenced = error.code() in (ck.KafkaError.PRODUCER_FENCED, ck.KafkaError.INVALID_PRODUCER_EPOCH)
        if transactional and (error.fatal() or fenced):
            msg = (
                f"the Kafka sink's producer for {self.sink.topic} was fenced or failed fatally ({error}): another "
                f"worker with app id {self.app_id} took over this sink (one worker writes a Kafka sink at a time)"
            )
            raise SinkRejected(msg, table_uri=self.sink.topic)
        if transactional:
            try:
                self.producer.abort_transaction(self.sink.timeout_s)
            except ck.KafkaException as exc:
                log.warning("aborting the transaction on %s failed: %s", self.sink.topic, exc)
        msg = f"producing to {self.sink.topic} failed ({error}); the batch is retried"
        raise SinkUnavailable(msg, table_uri=self.sink.topic)

    def _delivered(self, error: ck.KafkaError | None, _message: ck.Message) -> None:
        if error is not None:
            self._failures.append(error)

    def _produce(self, topic: str, value: Any, key: Any, headers: Any) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, headers=headers, on_delivery=self._delivered)
                return
            except BufferError:  # the queue is full: send what it holds (linger is long)
                self.producer.flush(0.1)

    def _produce_rows(self, table: pa.Table) -> int:
        """One message per row. The client API is per message, so this loop is the one
        place a Python statement runs per record; values are built column-wise before it."""
        table = table.drop_columns([c for c in (LINEAGE,) if c in table.column_names])
        values = self._values(table)
        keys = pc.cast(table[self.sink.key], pa.string()).to_pylist() if self.sink.key else [None] * table.num_rows
        headers: list[Any] = [None] * table.num_rows
        if self.sink.header_columns:
            columns = [pc.cast(table[c], pa.string()).to_pylist() for c in self.sink.header_columns]
            names = self.sink.header_columns
            headers = [
                [(n, v) for n, v in zip(names, row, strict=True) if v is not None] for row in zip(*columns, strict=True)
            ]
        topic, produce = self.sink.topic, self.producer.produce
        delivered = self._delivered
        for value, key, header in zip(values, keys, headers, strict=True):
            try:
                produce(topic, value, key, headers=header, on_delivery=delivered)
            except BufferError:
                self._produce(topic, value, key, header)
        return int(table.num_rows)

    def _values(self, table: pa.Table) -> list[Any]:
        if self.sink.value_column:
            return table[self.sink.value_column].to_pylist()  # type: ignore[no-any-return]
        import duckdb

        with duckdb.connect() as con:
            con.register("rows", table)
            json_rows = con.sql("SELECT to_json(rows)::VARCHAR AS value FROM rows").to_arrow_table()
        return json_rows["value"].to_pylist()  # type: ignore[no-any-return]

    def _flush(self) -> None:
        remaining = self.producer.flush(self.sink.timeout_s)
        if remaining:
            msg = f"{remaining} record(s) not delivered to {self.sink.topic} in {self.sink.timeout_s}s"
            raise SinkUnavailable(msg, table_uri=self.sink.topic)

    def summary(self) -> dict[str, Any]:
        return {"location": f"kafka {self.sink.topic}", "positions_topic": self.sink.positions_topic}

    def close(self) -> None:
        self.producer.flush(self.sink.timeout_s)
