"""The Kinesis source against real kinesalite, with in-memory sinks to observe it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from aws_kinesis_agg.aggregator import RecordAggregator

from connectors.kinesis import KinesisSource
from connectors.kinesis.admin import create_stream, kinesis_client, put_records
from connectors.kinesis.source import parse_cursor
from stream_etl import RunContext, Topology
from stream_etl.errors import ConfigurationError, SourceMissing
from stream_etl.records import SourcePartition
from stream_etl.runloop import RunLoop, RunSummary
from stream_etl.samples import malformed, order, orders
from stream_etl.settings import Settings
from tests.services import KinesisService

from stream_etl.testing import MemorySink  # isort: skip


@pytest.fixture
def client(kinesis: KinesisService) -> Any:
    made = kinesis_client(kinesis.endpoint)
    yield made
    made.close()


def _settings(kinesis: KinesisService) -> Settings:
    return Settings.from_environment(kinesis.environment())


def _run(
    kinesis: KinesisService,
    source: KinesisSource,
    app_id: str,
    sink: MemorySink | None = None,
    dead: MemorySink | None = None,
) -> tuple[RunSummary, MemorySink]:
    sink = sink or MemorySink("out")
    topology = Topology("kinesis-test", dead_letters=dead or MemorySink("dead"), max_batch_records=700)
    topology.source(source).sink(sink)
    ctx = RunContext(app_id=app_id, settings=_settings(kinesis), mode="until_caught_up")
    return RunLoop(topology, ctx).run(), sink


def _source(stream: str, tmp_path: Path, **options: Any) -> KinesisSource:
    return KinesisSource(stream, lease_uri=str(tmp_path / "leases"), idle_poll=timedelta(milliseconds=50), **options)


def _ids(sink: MemorySink) -> list[int]:
    return sorted(sink.table()["id"].to_pylist())


def test_reads_every_shard_then_resumes_after_the_stored_cursor(
    kinesis: KinesisService, client: Any, unique: str, tmp_path: Path
) -> None:
    create_stream(client, unique, 4)
    values = list(orders(2000, bad_every=500))
    put_records(client, unique, values)
    sink, dead = MemorySink("out"), MemorySink("dead")
    metadata = ["stream", "shard", "sequence_number", "partition_key", "arrival_time"]

    summary, _ = _run(kinesis, _source(unique, tmp_path, metadata=metadata), unique, sink, dead)

    table = sink.table()
    good = [i for i in range(2000) if i % 500 != 499]
    assert summary.caught_up and _ids(sink) == good
    assert set(table["_stream"].to_pylist()) == {unique}
    assert len(set(table["_shard"].to_pylist())) == 4
    assert table["_partition_key"].to_pylist() == [str(i) for i in table["id"].to_pylist()]
    assert table.schema.field("_arrival_time").type == pa.timestamp("ms", tz="UTC")
    assert len(set(table["_sequence_number"].to_pylist())) == len(good)
    # Dead letters name the shard and the record's position in it.
    letters = dead.table()
    assert sorted(letters["raw"].to_pylist()) == sorted(malformed(i) for i in range(2000) if i % 500 == 499)
    assert set(letters["partition"].to_pylist()) <= set(table["_shard"].to_pylist())
    # Positions are per-shard counters; each has a cursor "<position>:<sequence number>".
    assert sum(p + 1 for p in sink.positions.values()) == 2000
    for sp, position in sink.positions.items():
        assert parse_cursor(sink.cursors[sp])[0] == position

    put_records(client, unique, orders(300, start=2000), start=2000)
    summary, _ = _run(kinesis, _source(unique, tmp_path), unique, sink, dead)

    assert summary.stats["records_in"] == 300
    assert _ids(sink) == [*good, *range(2000, 2300)]


def test_closed_shards_are_read_to_their_end_before_their_children(
    kinesis: KinesisService, client: Any, unique: str, tmp_path: Path
) -> None:
    create_stream(client, unique, 2)
    put_records(client, unique, orders(600))
    shards = client.list_shards(StreamName=unique)["Shards"]
    low, high = int(shards[0]["HashKeyRange"]["StartingHashKey"]), int(shards[0]["HashKeyRange"]["EndingHashKey"])
    client.split_shard(StreamName=unique, ShardToSplit=shards[0]["ShardId"], NewStartingHashKey=str((low + high) // 2))
    _wait_active(client, unique)
    put_records(client, unique, orders(600, start=600), start=600)
    children = [s["ShardId"] for s in client.list_shards(StreamName=unique)["Shards"] if s.get("ParentShardId")]
    client.merge_shards(StreamName=unique, ShardToMerge=children[0], AdjacentShardToMerge=children[1])
    _wait_active(client, unique)
    put_records(client, unique, orders(600, start=1200), start=1200)
    lineage = {
        s["ShardId"]: {p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")) if p}
        for s in client.list_shards(StreamName=unique)["Shards"]
    }
    assert len(lineage) == 5

    summary, sink = _run(kinesis, _source(unique, tmp_path, metadata=["shard"]), unique)

    assert summary.caught_up and _ids(sink) == list(range(1800))
    # Commits are in order: a shard's first commit comes after its parents' last ones.
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for index, table in enumerate(sink.tables):
        for shard in set(table["_shard"].to_pylist()) if table.num_rows else ():
            first.setdefault(shard, index)
            last[shard] = index
    for shard, parents in lineage.items():
        for parent in parents:
            if shard in first and parent in last:
                assert first[shard] > last[parent], f"{shard} was committed before its parent {parent} ended"
    assert len(first) == 5  # every shard got records


def test_start_from_latest_a_timestamp_or_a_sequence_number(
    kinesis: KinesisService, client: Any, unique: str, tmp_path: Path
) -> None:
    create_stream(client, unique, 1)
    put_records(client, unique, orders(100))
    time.sleep(1.2)
    middle = datetime.now(UTC)
    time.sleep(1.2)
    put_records(client, unique, orders(100, start=100), start=100)
    shard = client.list_shards(StreamName=unique)["Shards"][0]["ShardId"]
    iterator = client.get_shard_iterator(StreamName=unique, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = client.get_records(ShardIterator=iterator["ShardIterator"], Limit=200)["Records"]
    at_150 = next(r["SequenceNumber"] for r in records if r["PartitionKey"] == "150")

    latest, sink = _run(kinesis, _source(unique, tmp_path, start_from="latest"), f"{unique}-l")
    assert latest.caught_up and sink.table().num_rows == 0
    _, sink = _run(kinesis, _source(unique, tmp_path, start_from=middle), f"{unique}-t")
    assert _ids(sink) == list(range(100, 200))
    _, sink = _run(kinesis, _source(unique, tmp_path, start_from={shard: at_150}), f"{unique}-s")
    assert _ids(sink) == list(range(150, 200))


def test_kpl_aggregated_records_are_split_into_their_user_records(
    kinesis: KinesisService, client: Any, unique: str, tmp_path: Path
) -> None:
    create_stream(client, unique, 2)
    entries = []
    for chunk in range(10):  # 10 aggregated records of 50 user records, between plain ones
        aggregator = RecordAggregator()
        for i in range(chunk * 50, chunk * 50 + 50):
            aggregator.add_user_record(str(i), orjson_order(i))
        key, _, data = aggregator.clear_and_get().get_contents()
        entries.append({"Data": data, "PartitionKey": key})
        entries.append({"Data": orjson_order(1000 + chunk), "PartitionKey": str(1000 + chunk)})
    client.put_records(StreamName=unique, Records=entries)
    sink = MemorySink("out")

    summary, _ = _run(kinesis, _source(unique, tmp_path, metadata=["partition_key"]), unique, sink)

    expected = [*range(500), *range(1000, 1010)]
    assert summary.stats["records_in"] == 510 and _ids(sink) == expected
    table = sink.table()
    assert table["_partition_key"].to_pylist() == [str(i) for i in table["id"].to_pylist()]
    assert sum(p + 1 for p in sink.positions.values()) == 510  # one position per user record

    client.put_records(StreamName=unique, Records=[{"Data": orjson_order(2000), "PartitionKey": "x"}])
    summary, _ = _run(kinesis, _source(unique, tmp_path), unique, sink)
    assert summary.stats["records_in"] == 1  # resumed after the last aggregated record


def test_a_missing_stream_names_the_streams_that_exist(
    kinesis: KinesisService, client: Any, unique: str, tmp_path: Path
) -> None:
    create_stream(client, unique, 1)
    with pytest.raises(SourceMissing, match=f"does not exist.*{unique}"):
        _run(kinesis, _source(f"{unique}-nope", tmp_path), unique)


def test_bad_settings_fail_fast() -> None:
    with pytest.raises(ConfigurationError, match="stream"):
        KinesisSource("bad name!")
    with pytest.raises(ConfigurationError, match="lease_duration"):
        KinesisSource("ok", lease_duration=timedelta(milliseconds=10))


def test_a_sink_that_cannot_store_cursors_is_refused(
    kinesis: KinesisService, client: Any, unique: str, tmp_path: Path
) -> None:
    create_stream(client, unique, 1)
    put_records(client, unique, orders(10))
    sink = MemorySink("out")
    _run(kinesis, _source(unique, tmp_path), unique, sink)
    sink.cursors.clear()  # a position without its cursor cannot be resumed

    with pytest.raises(Exception, match="no stored Kinesis cursor"):
        _run(kinesis, _source(unique, tmp_path), unique, sink)
    assert SourcePartition(unique, "shardId-000000000000") in sink.positions


def orjson_order(i: int) -> bytes:
    import orjson

    return orjson.dumps(order(i))


def _wait_active(client: Any, stream: str) -> None:
    from connectors.kinesis.admin import wait_active

    wait_active(client, stream)


def test_two_until_caught_up_workers_share_the_shards_and_both_finish(
    kinesis: KinesisService, client: Any, unique: str, tmp_path: Path
) -> None:
    import threading

    create_stream(client, unique, 4)
    put_records(client, unique, orders(4000))
    sink = MemorySink("out")
    summaries: dict[str, RunSummary] = {}
    errors: list[BaseException] = []

    def work(worker: str) -> None:
        source = _source(unique, tmp_path, worker_id=worker, lease_duration=timedelta(seconds=3))
        topology = Topology("kinesis-test", dead_letters=MemorySink("dead"), max_batch_records=300)
        topology.source(source).sink(sink)
        ctx = RunContext(app_id=unique, settings=_settings(kinesis), mode="until_caught_up")
        try:
            summaries[worker] = RunLoop(topology, ctx).run()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not errors and not any(t.is_alive() for t in threads)
    assert all(s.caught_up for s in summaries.values())
    assert _ids(sink) == list(range(4000))
    assert sum(s.stats["records_in"] - s.stats["already_committed"] for s in summaries.values()) == 4000


def test_a_dead_workers_stale_tip_does_not_end_an_until_caught_up_run(
    kinesis: KinesisService, client: Any, unique: str, tmp_path: Path
) -> None:
    from connectors.kinesis.leases import FileLeaseStore

    create_stream(client, unique, 1)
    put_records(client, unique, orders(5))
    sink = MemorySink("out")
    _run(kinesis, _source(unique, tmp_path), unique, sink)
    put_records(client, unique, orders(5, start=5), start=5)
    # A worker that died holding the shard had published its tip before the last 5 records.
    store = FileLeaseStore(tmp_path / "leases", unique, unique)
    doc = store.read()
    doc.workers = {"ghost": 7}
    for lease in doc.leases.values():
        lease.update(owner="ghost", tip=5, finished=False, wanted_by=None)
    assert store.write(doc)

    summary, _ = _run(kinesis, _source(unique, tmp_path, lease_duration=timedelta(seconds=2)), unique, sink)

    assert summary.caught_up and summary.stats["records_in"] == 5  # waited for the lease, then read on
    assert _ids(sink) == list(range(10))


def test_stateful_steps_resume_with_the_shards(
    kinesis: KinesisService, client: Any, unique: str, tmp_path: Path
) -> None:
    import orjson

    from stream_etl import JsonFormat
    from stream_etl.samples import CLICK_SCHEMA, clicks

    create_stream(client, unique, 2)
    data = list(clicks(2000))
    keys = [key.decode() for key, _ in data]
    put_records(client, unique, [value for _, value in data[:1000]], keys=keys[:1000])
    sink = MemorySink("out")

    def run() -> RunSummary:
        topology = Topology("clicks", dead_letters=MemorySink("dead"), max_batch_records=300)
        (
            topology.source(_source(unique, tmp_path), format=JsonFormat(CLICK_SCHEMA))
            .dedupe("click_id", time_column="ts", horizon=timedelta(minutes=1), name="double_clicks")
            .sink(sink)
        )
        return RunLoop(topology, RunContext(unique, settings=_settings(kinesis), mode="until_caught_up")).run()

    run()
    put_records(client, unique, [value for _, value in data[1000:]], keys=keys[1000:])
    second = run()

    assert second.stats["records_in"] == 1000
    kept = sink.table()["click_id"].to_pylist()
    # Double clicks repeat a click id within a second, in the same shard (keyed by user):
    # each id is kept once, across the restart too.
    assert sorted(kept) == sorted({orjson.loads(value)["click_id"] for _, value in data})
