"""The run loop over the in-memory source and sinks: counts, partitions, resume, conflicts, dead letters.

ListSource and MemorySink implement the real interfaces (positions, seeks, conflict
rules like Delta's), so these tests drive the same run loop that drives Kafka and Delta.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from stream_etl import RunContext, RunSummary, Topology, run
from stream_etl.context import RunMode
from stream_etl.dead_letters import DEAD_LETTER_SCHEMA
from stream_etl.errors import ConfigurationError, RetriesExhausted, SinkUnavailable
from stream_etl.metrics import RunStats
from stream_etl.records import Chunk, SourcePartition
from stream_etl.runloop import RunLoop
from stream_etl.settings import Settings
from stream_etl.sinks import CommitInfo, Snapshot
from stream_etl.sources import AssignmentListener
from stream_etl.testing import ListReader, ListSource, MemorySink, MemoryWriter, Record, run_topology


def _orders(n: int, *, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": i, "amount": float(i % 10) - 2.0} for i in range(start, start + n)]


def _topology(*, batch: int = 100_000) -> Topology:
    topology = Topology("orders", max_batch_records=batch)
    (
        topology.source(ListSource([]))
        .filter("amount >= 0", name="valid")
        .derive("cents", "CAST(round(amount * 100) AS BIGINT)", name="cents")
        .sink(MemorySink("out"))
    )
    return topology


def _source(records: Sequence[Record], *, partitions: int = 1) -> ListSource:
    """A list source that adds ``_partition`` and ``_offset`` columns."""
    return ListSource(records, partitions=partitions, metadata=("partition", "offset"))


def _run(
    topology: Topology,
    source: ListSource,
    out: MemorySink | dict[str, MemorySink],
    dead: MemorySink,
    *,
    mode: RunMode = "until_caught_up",
    **kwargs: Any,
) -> RunSummary:
    """Run ``topology`` with our own sink objects, so a later run sees what this one committed.

    ``out`` is the sink named "out", or sinks by name.
    """
    sinks = out if isinstance(out, dict) else {"out": out}
    local = topology.with_connectors(source=source, sinks=sinks, dead_letters=dead)
    return RunLoop(local, RunContext("job", mode=mode), **kwargs).run()


def _assert_reconciled(stats: dict[str, Any]) -> None:
    accounted = stats["written"] + stats["filtered"] + stats["dead_lettered"] + stats["already_committed"]
    assert stats["records_in"] == accounted, stats


def _assert_once(values: Sequence[Any], expected: Sequence[Any]) -> None:
    """Every expected value exactly once, nothing else."""
    duplicates = [v for v, n in Counter(values).items() if n > 1]
    assert duplicates == []
    assert sorted(values) == sorted(expected)


def _valid_ids(records: Sequence[Record]) -> list[int]:
    return [r["id"] for r in records if isinstance(r, dict) and isinstance(r["amount"], float) and r["amount"] >= 0]


def test_counts_reconcile_by_record() -> None:
    records: list[Record] = [*_orders(50), b"not json", None, {"id": 1000, "amount": "x"}]

    result = run_topology(_topology(batch=7), records)

    stats = result.summary.stats
    _assert_reconciled(stats)
    assert result.summary.caught_up is True
    assert stats["records_in"] == 53
    assert stats["written"] == 40
    assert stats["filtered"] == 10
    assert stats["dead_lettered"] == 3
    assert stats["already_committed"] == 0
    assert stats["batches"] >= 8
    assert stats["conflicts"] == 0
    _assert_once(result.output()["id"].to_pylist(), _valid_ids(records))
    assert result.dead_letters.num_rows == 3


def test_output_rows_carry_the_transform_results_and_source_metadata() -> None:
    out = MemorySink("out")

    _run(_topology(), _source(_orders(5)), out, MemorySink("dead"))

    assert out.table().to_pylist() == [
        {"id": 2, "amount": 0.0, "_partition": 0, "_offset": 2, "cents": 0},
        {"id": 3, "amount": 1.0, "_partition": 0, "_offset": 3, "cents": 100},
        {"id": 4, "amount": 2.0, "_partition": 0, "_offset": 4, "cents": 200},
    ]


def test_several_partitions_are_each_read_in_order_and_their_positions_stored() -> None:
    records = _orders(100)
    out = MemorySink("out")

    summary = _run(_topology(batch=9), _source(records, partitions=4), out, MemorySink("dead"))

    output = out.table()
    _assert_once(output["id"].to_pylist(), _valid_ids(records))
    for partition in range(4):
        rows = output.filter(pc.equal(output["_partition"], partition))
        assert rows["id"].to_pylist() == sorted(rows["id"].to_pylist())
        assert all(i % 4 == partition for i in rows["id"].to_pylist())
        assert rows["_offset"].to_pylist() == [i // 4 for i in rows["id"].to_pylist()]
    assert out.positions == {SourcePartition("memory", p): 24 for p in range(4)}
    _assert_reconciled(summary.stats)


def test_a_partition_without_records_is_not_waited_for() -> None:
    result = run_topology(_topology(), _orders(2), partitions=3)

    assert result.summary.caught_up is True
    assert set(result.sinks["out"].positions) == {SourcePartition("memory", 0), SourcePartition("memory", 1)}


def test_a_batch_filtered_to_nothing_still_moves_the_positions() -> None:
    records = [{"id": i, "amount": -1.0} for i in range(10)]

    result = run_topology(_topology(), records)

    assert result.output().num_rows == 0
    assert result.sinks["out"].positions == {SourcePartition("memory", 0): 9}
    assert result.summary.stats["filtered"] == 10


def test_a_second_run_resumes_and_writes_nothing_twice() -> None:
    out, dead = MemorySink("out"), MemorySink("dead")
    first_records: list[Record] = [*_orders(30), b"bad-1"]
    all_records: list[Record] = [*first_records, *_orders(30, start=30), b"bad-2"]

    first = _run(_topology(batch=8), ListSource(first_records, partitions=3), out, dead)
    second = _run(_topology(batch=8), ListSource(all_records, partitions=3), out, dead)
    third = _run(_topology(batch=8), ListSource(all_records, partitions=3), out, dead)

    assert first.stats["records_in"] == 31
    assert second.stats["records_in"] == 31
    _assert_reconciled(first.stats)
    _assert_reconciled(second.stats)
    assert third.caught_up is True
    assert third.stats["records_in"] == 0
    assert third.stats["commits"] == 0
    _assert_once(out.table()["id"].to_pylist(), _valid_ids(all_records))
    _assert_once(dead.table()["raw"].to_pylist(), [b"bad-1", b"bad-2"])


class ReplayingListSource(ListSource):
    """A source that ignores the resume positions and reads every partition from its start."""

    def open(self, ctx: RunContext, listener: AssignmentListener) -> ListReader:
        return ReplayingListReader(self, listener)


class ReplayingListReader(ListReader):
    def start(self) -> None:
        super().start()
        self._cursor = [0] * len(self._cursor)


def test_records_replayed_below_the_stored_positions_are_not_written_again() -> None:
    out, dead = MemorySink("out"), MemorySink("dead")
    _run(_topology(), ListSource(_orders(20), partitions=2), out, dead)

    second = _run(_topology(), ReplayingListSource(_orders(40), partitions=2), out, dead)

    stats = second.stats
    assert stats["records_in"] == 40
    assert stats["already_committed"] == 16  # the valid half of the first 20; the others are filtered again
    assert stats["filtered"] == 8
    assert stats["written"] == 16
    _assert_reconciled(stats)
    _assert_once(out.table()["id"].to_pylist(), _valid_ids(_orders(40)))


class InterloperWriter(MemoryWriter):
    """Once, just before our commit, another writer of the same job commits part of our batch.

    It commits the first half of our rows of partition 0, with their position, as a
    second worker that read the same records would; our commit is then based on a
    stale snapshot and must fail with PositionConflict.
    """

    sink: InterloperSink

    def commit(self, snapshot: Snapshot, table: pa.Table | None, positions: dict[SourcePartition, int]) -> CommitInfo:
        sink = self.sink
        target = SourcePartition("memory", 0)
        if not sink.interfered and table is not None and target in positions:
            ours = table.filter(pc.equal(table["_partition"], 0))
            if ours.num_rows >= 2:
                theirs = ours.slice(0, ours.num_rows // 2)
                other = MemoryWriter(sink)
                other.commit(other.snapshot(), theirs, {target: pc.max(theirs["_offset"]).as_py()})
                sink.interfered = True
                sink.their_ids = theirs["id"].to_pylist()
        return super().commit(snapshot, table, positions)


class InterloperSink(MemorySink):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.interfered = False
        self.their_ids: list[int] = []

    def open(self, ctx: RunContext) -> InterloperWriter:
        return InterloperWriter(self)


def test_a_position_conflict_re_seeks_and_still_writes_exactly_once() -> None:
    out, dead = InterloperSink("out"), MemorySink("dead")
    records: list[Record] = [*_orders(60), b"bad"]

    summary = _run(_topology(batch=6), _source(records, partitions=2), out, dead)

    assert out.interfered
    assert summary.stats["conflicts"] >= 1
    assert summary.caught_up is True
    ids = out.table()["id"].to_pylist()
    _assert_once(ids, _valid_ids(records))
    assert set(out.their_ids) <= set(ids)
    assert out.positions == {SourcePartition("memory", 0): 30, SourcePartition("memory", 1): 29}
    _assert_once(dead.table()["raw"].to_pylist(), [b"bad"])
    _assert_reconciled(summary.stats)


def test_a_position_conflict_in_a_secondary_sink_also_ends_exactly_once_everywhere() -> None:
    topology = Topology("orders", max_batch_records=6)
    valid = topology.source(ListSource([])).filter("amount >= 0", name="valid")
    valid.sink(MemorySink("out"))
    valid.sink(MemorySink("copy"))
    out, copy, dead = MemorySink("out"), InterloperSink("copy"), MemorySink("dead")
    records = _orders(60)

    summary = _run(topology, _source(records, partitions=2), {"out": out, "copy": copy}, dead)

    assert copy.interfered
    assert summary.stats["conflicts"] >= 1
    _assert_once(out.table()["id"].to_pylist(), _valid_ids(records))
    _assert_once(copy.table()["id"].to_pylist(), _valid_ids(records))
    assert out.positions == copy.positions
    _assert_reconciled(summary.stats)


class FlakyWriter(MemoryWriter):
    sink: FlakySink

    def commit(self, snapshot: Snapshot, table: pa.Table | None, positions: dict[SourcePartition, int]) -> CommitInfo:
        if self.sink.failures_left:
            self.sink.failures_left -= 1
            raise SinkUnavailable("object store timed out", table_uri="memory://flaky")
        return super().commit(snapshot, table, positions)


class FlakySink(MemorySink):
    def __init__(self, name: str, failures: int) -> None:
        super().__init__(name)
        self.failures_left = failures

    def open(self, ctx: RunContext) -> FlakyWriter:
        return FlakyWriter(self)


def test_a_transient_sink_error_is_retried_and_writes_once() -> None:
    out, dead = FlakySink("out", failures=1), MemorySink("dead")

    summary = _run(_topology(), ListSource(_orders(10)), out, dead)

    assert summary.stats["retries"] == 1
    assert out.failures_left == 0
    _assert_once(out.table()["id"].to_pylist(), _valid_ids(_orders(10)))


class LostAckWriter(MemoryWriter):
    """Commits, then reports a failure: the response of a commit that landed was lost."""

    sink: LostAckSink

    def commit(self, snapshot: Snapshot, table: pa.Table | None, positions: dict[SourcePartition, int]) -> CommitInfo:
        info = super().commit(snapshot, table, positions)
        if self.sink.lost_left:
            self.sink.lost_left -= 1
            raise SinkUnavailable("connection reset after the request was sent", table_uri="memory://lost")
        return info


class LostAckSink(MemorySink):
    def __init__(self, name: str, lost: int) -> None:
        super().__init__(name)
        self.lost_left = lost

    def open(self, ctx: RunContext) -> LostAckWriter:
        return LostAckWriter(self)


def test_a_commit_that_landed_but_reported_a_failure_is_not_repeated_and_counts_as_written() -> None:
    out, dead = LostAckSink("out", lost=2), MemorySink("dead")
    records = _orders(300)

    summary = _run(_topology(batch=100), _source(records, partitions=2), out, dead)

    assert out.lost_left == 0 and summary.stats["retries"] == 2
    _assert_once(out.table()["id"].to_pylist(), _valid_ids(records))
    assert summary.stats["written"] == len(_valid_ids(records))
    _assert_reconciled(summary.stats)


def test_a_sink_failing_past_the_retry_budget_stops_the_run_and_commits_nothing() -> None:
    out, dead = FlakySink("out", failures=10**6), MemorySink("dead")
    local = _topology().with_connectors(source=ListSource(_orders(10)), sinks={"out": out}, dead_letters=dead)
    settings = Settings(sink_retry_timeout_s=0.5)

    with pytest.raises(RetriesExhausted, match="committing to out kept failing .*STREAM_ETL_SINK_RETRY_TIMEOUT_S"):
        RunLoop(local, RunContext("job", settings=settings, mode="until_caught_up")).run()

    assert out.table().num_rows == 0


def test_a_step_failing_on_some_rows_dead_letters_only_those_rows() -> None:
    def no_sevens(table: pa.Table) -> pa.Table:
        ids = table["id"].to_pylist()
        if any(i % 10 == 7 for i in ids):
            raise ValueError(f"sevens in {ids}")
        return table

    topology = Topology("orders", max_batch_records=25)
    topology.source(ListSource([])).map_batches(no_sevens, name="no_sevens").sink(MemorySink("out"))
    records = _orders(50)

    result = run_topology(topology, records, partitions=2, app_id="dl-job")

    dead = result.dead_letters
    assert dead.schema == DEAD_LETTER_SCHEMA
    assert sorted(dead["offset"].to_pylist()) == sorted(i // 2 for i in range(50) if i % 10 == 7)
    assert set(dead["step"].to_pylist()) == {"no_sevens"}
    assert set(dead["error_class"].to_pylist()) == {"ValueError"}
    assert set(dead["app_id"].to_pylist()) == {"dl-job"}
    assert set(dead["topic"].to_pylist()) == {"memory"}
    assert sorted(dead["raw"].to_pylist()) == sorted(f'{{"id":{i},"amount":5.0}}'.encode() for i in range(7, 50, 10))
    assert all(r["error"] == f"sevens in [{orjson.loads(r['raw'])['id']}]" for r in dead.to_pylist())
    _assert_once(result.output()["id"].to_pylist(), [i for i in range(50) if i % 10 != 7])
    assert result.summary.stats["dead_lettered"] == 5
    _assert_reconciled(result.summary.stats)


def test_an_optional_field_absent_from_a_whole_batch_is_null_not_a_failure() -> None:
    topology = Topology("t", max_batch_records=2)
    topology.source(ListSource([])).filter("coupon IS NULL", name="no_coupon").sink(MemorySink("out"))
    records = [{"id": 1}, {"id": 2}, {"id": 3, "coupon": "x"}, {"id": 4}]

    result = run_topology(topology, records)

    assert result.dead_letters.num_rows == 0
    assert result.output()["id"].to_pylist() == [1, 2, 4]


class NarrowWriter(MemoryWriter):
    """Conforms rows to the table's schema: ``id`` must fit an int8."""

    def conform(self, table: pa.Table, snapshot: Snapshot) -> pa.Table:
        index = table.schema.get_field_index("id")
        return table.set_column(index, "id", pc.cast(table["id"], pa.int8()))


class NarrowSink(MemorySink):
    def open(self, ctx: RunContext) -> NarrowWriter:
        return NarrowWriter(self)


def test_rows_the_sink_cannot_conform_are_dead_lettered_with_the_sink_name() -> None:
    topology = Topology("t")
    topology.source(ListSource([])).sink(MemorySink("out"))
    out, dead = NarrowSink("out"), MemorySink("dead")
    records = [{"id": i} for i in (1, 2, 300, 4, -500, 6)]

    summary = _run(topology, ListSource(records), out, dead)

    assert out.table()["id"].to_pylist() == [1, 2, 4, 6]
    assert out.table().schema.field("id").type == pa.int8()
    assert dead.table()["step"].to_pylist() == ["sink:out", "sink:out"]
    assert dead.table()["offset"].to_pylist() == [2, 4]
    assert summary.stats["dead_lettered"] == 2


def test_a_record_written_in_one_branch_and_failing_in_another_counts_as_written() -> None:
    topology = Topology("t")
    stream = topology.source(ListSource([]))
    stream.sink(MemorySink("all"))
    stream.cast({"id": "int8"}, name="to_int8").sink(MemorySink("narrow"))
    records = [{"id": i} for i in (1, 300, 3)]

    result = run_topology(topology, records)

    assert result.output("all")["id"].to_pylist() == [1, 300, 3]
    assert result.output("narrow")["id"].to_pylist() == [1, 3]
    assert result.dead_letters["step"].to_pylist() == ["to_int8"]
    stats = result.summary.stats
    assert (stats["written"], stats["dead_lettered"], stats["filtered"]) == (3, 0, 0)


def test_a_secondary_sink_ahead_of_the_primary_gets_no_duplicates() -> None:
    primary, secondary, dead = MemorySink("primary"), MemorySink("secondary"), MemorySink("dead")
    topology = Topology("t", max_batch_records=4)
    stream = topology.source(ListSource([]))
    stream.sink(MemorySink("primary"))
    stream.sink(MemorySink("secondary"))
    # A crash after the secondary committed records 0..5 and before the primary did.
    early = pa.table({"id": list(range(6))})
    writer = secondary.open(RunContext("job"))
    writer.commit(writer.snapshot(), early, {SourcePartition("memory", 0): 5})
    local = topology.with_connectors(
        source=ListSource([{"id": i} for i in range(10)]),
        sinks={"primary": primary, "secondary": secondary},
        dead_letters=dead,
    )

    summary = RunLoop(local, RunContext("job", mode="until_caught_up")).run()

    _assert_once(primary.table()["id"].to_pylist(), range(10))
    _assert_once(secondary.table()["id"].to_pylist(), range(10))
    assert primary.positions == secondary.positions == {SourcePartition("memory", 0): 9}
    assert summary.stats["written"] == 10
    _assert_reconciled(summary.stats)


def test_continuous_mode_runs_until_stopped() -> None:
    out, dead = MemorySink("out"), MemorySink("dead")
    stop = threading.Event()
    seen: list[int] = []

    def on_batch(stats: RunStats) -> None:
        seen.append(stats.records_in)
        if stats.records_in >= 20:
            stop.set()

    summary = _run(
        _topology(batch=5), ListSource(_orders(20)), out, dead, mode="continuous", stop=stop, on_batch=on_batch
    )

    assert summary.caught_up is False
    assert seen == [5, 10, 15, 20]
    _assert_once(out.table()["id"].to_pylist(), _valid_ids(_orders(20)))


def test_the_summary_names_every_sink() -> None:
    result = run_topology(_topology(), _orders(3), app_id="summary-job")

    assert result.summary.app_id == "summary-job"
    assert set(result.summary.sinks) == {"out", "dead_letters"}
    assert result.summary.sinks["out"]["location"] == "memory://out"


def test_nothing_to_read_finishes_at_once() -> None:
    result = run_topology(_topology(), [])

    assert result.summary.caught_up is True
    assert result.summary.stats["records_in"] == 0
    assert result.output().num_rows == 0


def test_run_refuses_what_is_not_a_topology() -> None:
    with pytest.raises(ConfigurationError, match="expected a Topology, got str"):
        run("topologies/orders.py", RunContext("job"))  # type: ignore[arg-type]


def test_run_validates_the_topology_first() -> None:
    topology = Topology("t")
    topology.source(ListSource([]))

    with pytest.raises(ConfigurationError, match="has no sink"):
        run(topology, RunContext("job"))


class EndlessListSource(ListSource):
    """A source that never reports reaching its end, as a live topic would not."""

    def open(self, ctx: RunContext, listener: AssignmentListener) -> ListReader:
        return EndlessListReader(self, listener)


class EndlessListReader(ListReader):
    def poll(self, max_records: int, timeout: float) -> Chunk | None:
        chunk = super().poll(max_records, timeout)
        return replace(chunk, ends={}) if chunk is not None else None


def test_the_latency_limit_closes_a_batch_that_is_not_full() -> None:
    topology = Topology("t", max_batch_latency=timedelta(milliseconds=50))
    topology.source(ListSource([])).sink(MemorySink("out"))
    out, dead = MemorySink("out"), MemorySink("dead")
    stop = threading.Event()

    summary = _run(
        topology, EndlessListSource(_orders(3)), out, dead, mode="continuous", stop=stop, on_batch=lambda s: stop.set()
    )

    assert summary.stats["batches"] == 1
    assert summary.stats["records_in"] == 3
    assert out.table()["id"].to_pylist() == [0, 1, 2]


class _ObservedSource(ListSource):
    """Keeps its reader, to see how far it was read."""

    reader: ListReader | None = None

    def open(self, ctx: RunContext, listener: AssignmentListener) -> ListReader:
        self.reader = super().open(ctx, listener)
        return self.reader


class _HookedSink(MemorySink):
    """A memory sink that calls :meth:`before_commit` with each commit's rows first."""

    def before_commit(self, table: pa.Table | None) -> None:
        raise NotImplementedError

    def open(self, ctx: RunContext) -> MemoryWriter:
        sink = self

        class Writer(MemoryWriter):
            def commit(
                self, snapshot: Snapshot, table: pa.Table | None, positions: dict[SourcePartition, int]
            ) -> CommitInfo:
                sink.before_commit(table)
                return super().commit(snapshot, table, positions)

        return Writer(self)


class _BlockedSink(_HookedSink):
    """A sink whose commits wait until released: the pipeline behind it must stop reading."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.release = threading.Event()
        self.entered = threading.Event()

    def before_commit(self, table: pa.Table | None) -> None:
        self.entered.set()
        self.release.wait(timeout=30)


def test_a_slow_sink_stops_the_source_being_read_ahead_beyond_the_pipeline() -> None:
    """Backpressure: with commits blocked, the fetch stage stops after a bounded read-ahead."""
    batch = 1_000
    records = [{"id": i} for i in range(50 * batch)]
    source = _ObservedSource(records)
    sink = _BlockedSink("out")
    topology = Topology("slow", max_batch_records=batch, prefetch_batches=1, dead_letters=MemorySink("dead"))
    topology.source(source).sink(sink)
    loop = RunLoop(topology, RunContext(app_id="slow", mode="until_caught_up"))
    runner = threading.Thread(target=loop.run)
    runner.start()
    try:
        assert sink.entered.wait(timeout=10)
        time.sleep(1.0)  # give the fetch stage every chance to run ahead
        assert source.reader is not None
        read = sum(source.reader._cursor)
        # in flight at most: the batch being committed, one prepared, one being prepared,
        # prefetch_batches queued, one in the batcher, one poll beyond it
        assert read <= 6 * batch, f"read {read} records ahead of a blocked sink"
    finally:
        sink.release.set()
        runner.join(timeout=60)
    assert sorted(sink.table()["id"].to_pylist()) == list(range(50 * batch))


class _SlowSink(_HookedSink):
    """Each commit takes ``delay`` seconds: the commits lag behind the reading."""

    def __init__(self, name: str, delay: float) -> None:
        super().__init__(name)
        self.delay = delay
        self.commits: list[int] = []

    def before_commit(self, table: pa.Table | None) -> None:
        time.sleep(self.delay)
        self.commits.append(table.num_rows if table is not None else 0)


def test_batches_prepared_while_commits_lag_are_committed_together_exactly_once() -> None:
    """Coalescing: a batch prepared while the one before still waits for its commit joins it
    (two at most), and each record is still written, filtered or dead-lettered exactly once,
    the dead letters with their own raw bytes and offsets."""
    records: list[Record] = [*_orders(2_000)]
    bad_rows = list(range(3, 2_000, 101))
    for row in bad_rows:
        records[row] = f"not json {row}".encode()
    sink, dead = _SlowSink("out", delay=0.05), MemorySink("dead")
    topology = Topology("slow", max_batch_records=100, dead_letters=dead)
    topology.source(ListSource([])).filter("amount >= 0", name="valid").sink(sink)

    summary = _run(topology, _source(records, partitions=2), sink, dead)

    stats = summary.stats
    _assert_reconciled(stats)
    assert stats["batches"] >= 20
    assert len(sink.commits) < stats["batches"], "no batches were committed together"
    assert max(sink.commits) > 100  # a commit held more than one batch's rows
    valid = _valid_ids([r for r in records if isinstance(r, dict)])
    _assert_once(sink.table()["id"].to_pylist(), valid)
    assert stats["dead_lettered"] == len(bad_rows)
    letters = dead.table().to_pylist()
    # a record's offset in its partition (records alternate between the two partitions)
    assert sorted((r["raw"], r["offset"]) for r in letters) == sorted(
        (f"not json {row}".encode(), row // 2) for row in bad_rows
    )
    assert sink.positions == {SourcePartition("memory", 0): 999, SourcePartition("memory", 1): 999}


def test_batches_closed_by_bytes_are_not_merged() -> None:
    """A merged batch never holds more raw bytes than one batch may: big records stay apart."""
    records: list[Record] = [{"id": i, "amount": 1.0, "pad": "x" * 200} for i in range(600)]
    sink = _SlowSink("out", delay=0.05)
    # 20 records (~4.6 KB) close a batch; two would be more than max_batch_bytes
    topology = Topology("big", max_batch_records=20, max_batch_bytes=6_000, dead_letters=MemorySink("dead"))
    topology.source(ListSource([])).sink(sink)

    summary = _run(topology, _source(records), sink, MemorySink("dead"))

    assert summary.stats["batches"] >= 10
    assert len(sink.commits) == summary.stats["batches"]
    _assert_once(sink.table()["id"].to_pylist(), range(600))


def test_max_in_flight_bytes_bounds_the_read_ahead_of_a_blocked_sink() -> None:
    """The in-flight byte budget stops reading sooner than the queues alone would."""
    batch = 1_000
    records = [{"id": i} for i in range(50 * batch)]
    source = _ObservedSource(records)
    sink = _BlockedSink("out")
    budget = 2 * 12 * batch  # about two batches of {"id": nnnnn} values
    topology = Topology(
        "bounded",
        max_batch_records=batch,
        max_batch_bytes=budget,
        max_in_flight_bytes=budget,
        prefetch_batches=4,
        dead_letters=MemorySink("dead"),
    )
    topology.source(source).sink(sink)
    loop = RunLoop(topology, RunContext(app_id="bounded", mode="until_caught_up"))
    runner = threading.Thread(target=loop.run)
    runner.start()
    try:
        assert sink.entered.wait(timeout=10)
        time.sleep(1.0)  # give the fetch stage every chance to run ahead
        assert source.reader is not None
        read = sum(source.reader._cursor)
        # the budget (~2 batches), plus the batch it was crossed in
        assert read <= 3 * batch, f"read {read} records ahead of a blocked sink"
    finally:
        sink.release.set()
        runner.join(timeout=60)
    assert sorted(sink.table()["id"].to_pylist()) == list(range(50 * batch))


def test_max_in_flight_bytes_must_hold_a_batch() -> None:
    with pytest.raises(ConfigurationError, match="max_in_flight_bytes .* must be >= max_batch_bytes"):
        Topology("small", max_batch_bytes=1000, max_in_flight_bytes=999)


def test_cursors_are_committed_with_positions_and_handed_back_on_resume() -> None:
    sink, dead = MemorySink("out"), MemorySink("dead")

    def run_once(count: int) -> ListReader:
        source = _ObservedSource([{"id": i} for i in range(count)], partitions=2, cursors=True)
        topology = Topology("cursors", max_batch_records=7, dead_letters=dead)
        topology.source(source).sink(sink)
        RunLoop(topology, RunContext(app_id="cursors", mode="until_caught_up")).run()
        assert source.reader is not None
        return source.reader

    first = run_once(30)
    assert first.resumed_cursors == {}
    p0, p1 = SourcePartition("memory", 0), SourcePartition("memory", 1)
    assert sink.positions == {p0: 14, p1: 14}
    assert sink.cursors == {p0: "cursor-14", p1: "cursor-14"}

    second = run_once(40)  # ten more records: the second run starts the source again
    assert second.resumed_cursors == {p0: "cursor-14", p1: "cursor-14"}
    assert sink.cursors == {p0: "cursor-19", p1: "cursor-19"}
    assert sorted(sink.table()["id"].to_pylist()) == list(range(40))


def test_a_source_that_needs_cursors_refuses_a_sink_that_cannot_store_them() -> None:
    class NoCursors(MemorySink):
        def open(self, ctx: RunContext) -> MemoryWriter:
            writer = MemoryWriter(self)
            writer.stores_cursors = False
            return writer

    topology = Topology("cursors", dead_letters=MemorySink("dead"))
    topology.source(ListSource([{"id": 1}], cursors=True)).sink(NoCursors("out"))

    with pytest.raises(ConfigurationError, match="cannot store them"):
        RunLoop(topology, RunContext(app_id="cursors", mode="until_caught_up")).run()


class EndsFoundWhileReadingSource(ListSource):
    """Like a Kinesis source: no end positions up front; the ends are known once every
    partition was read to its end, and only after a few more asks (a lease round, say)."""

    def open(self, ctx: RunContext, listener: AssignmentListener) -> ListReader:
        return EndsFoundWhileReadingReader(self, listener)


class EndsFoundWhileReadingReader(ListReader):
    ends_known_up_front = False

    def __init__(self, source: ListSource, listener: AssignmentListener) -> None:
        super().__init__(source, listener)
        self.asked_after_the_end = 0

    def end_positions(self) -> dict[SourcePartition, int]:
        raise AssertionError("a source whose ends are found while reading is never asked up front")

    def found_ends(self) -> dict[SourcePartition, int] | None:
        if len(self._ended) < len(self._partitions):
            return None
        self.asked_after_the_end += 1
        if self.asked_after_the_end < 5:
            return None
        return {sp: len(v) for sp, v in zip(self._partitions, self.source.partitions, strict=True)}


def test_until_caught_up_with_ends_found_while_reading() -> None:
    out, dead = MemorySink("out"), MemorySink("dead")
    records = _orders(50)

    first = _run(_topology(batch=7), EndsFoundWhileReadingSource(records, partitions=3), out, dead)
    again = _run(_topology(batch=7), EndsFoundWhileReadingSource(records, partitions=3), out, dead)

    assert first.caught_up and first.stats["records_in"] == 50
    _assert_once(out.table()["id"].to_pylist(), _valid_ids(records))
    assert again.caught_up and again.stats["records_in"] == 0  # starts, finds itself at the ends, stops


class SlowEndsListSource(ListSource):
    """A source whose exact ends take long to find (Kafka probes them), and that allows
    finding them while the fetch thread polls."""

    def open(self, ctx: RunContext, listener: AssignmentListener) -> SlowEndsListReader:
        self.reader = SlowEndsListReader(self, listener)
        return self.reader


class SlowEndsListReader(ListReader):
    ends_while_polling = True

    def __init__(self, source: ListSource, listener: AssignmentListener) -> None:
        super().__init__(source, listener)
        self.polled = threading.Event()
        self.polled_before_ends: bool | None = None

    def poll(self, max_records: int, timeout: float) -> Chunk | None:
        self.polled.set()
        return super().poll(max_records, timeout)

    def end_positions(self) -> dict[SourcePartition, int]:
        self.polled_before_ends = self.polled.wait(timeout=5)
        return super().end_positions()


def test_records_are_read_while_the_exact_ends_are_found() -> None:
    out, dead = MemorySink("out"), MemorySink("dead")
    source = SlowEndsListSource(_orders(40), partitions=2)

    summary = _run(_topology(batch=8), source, out, dead)

    assert source.reader.polled_before_ends is True  # without waiting the 5 s
    assert summary.caught_up is True
    _assert_once(out.table()["id"].to_pylist(), _valid_ids(_orders(40)))
    _assert_reconciled(summary.stats)


class LateEndsListSource(ListSource):
    """Kafka-like ends: the quick estimate understates them (Tansu's ListOffsets can), and the
    exact ones arrive only after the first commit landed in ``out``."""

    def __init__(self, records: Sequence[Record], out: MemorySink, *, partitions: int) -> None:
        super().__init__(records, partitions=partitions)
        self.out = out

    def open(self, ctx: RunContext, listener: AssignmentListener) -> LateEndsListReader:
        self.reader = LateEndsListReader(self, listener)
        return self.reader


class LateEndsListReader(ListReader):
    ends_while_polling = True
    source: LateEndsListSource

    def __init__(self, source: LateEndsListSource, listener: AssignmentListener) -> None:
        super().__init__(source, listener)
        self.committed_before_ends: bool | None = None

    def rough_end_positions(self) -> dict[SourcePartition, int]:
        return {sp: 1 for sp in super().end_positions()}

    def end_positions(self) -> dict[SourcePartition, int]:
        deadline = time.monotonic() + 5
        while self.source.out.table().num_rows == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.committed_before_ends = self.source.out.table().num_rows > 0
        return super().end_positions()


def test_batches_commit_while_the_exact_ends_are_found_and_the_run_waits_for_them() -> None:
    out, dead = MemorySink("out"), MemorySink("dead")
    source = LateEndsListSource(_orders(40), out, partitions=2)

    summary = _run(_topology(batch=8), source, out, dead)

    assert source.reader.committed_before_ends is True  # the loop committed without waiting for the ends
    assert summary.caught_up is True  # against the exact ends, not the understated estimate
    _assert_once(out.table()["id"].to_pylist(), _valid_ids(_orders(40)))
    assert summary.stats["records_in"] == 40
    _assert_reconciled(summary.stats)


def test_on_started_runs_once_after_the_source_started_and_not_when_there_is_nothing_to_do() -> None:
    out, dead = MemorySink("out"), MemorySink("dead")
    calls: list[str] = []

    def loop(records: Sequence[Record]) -> RunLoop:
        local = _topology(batch=8).with_connectors(source=_source(records), sinks={"out": out}, dead_letters=dead)
        started = RunLoop(local, RunContext("job", mode="until_caught_up"))
        started.on_started = lambda: calls.append("started")
        return started

    first = loop(_orders(20)).run()
    assert calls == ["started"]
    assert first.stats["records_in"] == 20
    again = loop(_orders(20)).run()  # everything is committed: nothing to do, the source never starts
    assert again.caught_up is True
    assert calls == ["started"]
