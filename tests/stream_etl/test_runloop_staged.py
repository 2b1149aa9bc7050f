"""The run loop's staged commits over the in-memory source and sink: batches read while a
group join's verdict is awaited are written ahead (SinkWriter.stager) and committed at once when
the verdict keeps them; dropped, and read again, when it does not, when a write failed, or when
another writer moved the stored positions meanwhile. Each record exactly once in every case."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Literal

import pyarrow as pa
import pytest

from stream_etl import RunContext, RunSummary, Topology
from stream_etl.errors import SinkUnavailable
from stream_etl.records import Chunk, SourcePartition
from stream_etl.runloop import RunLoop
from stream_etl.sinks import CommitInfo, Snapshot, Staged
from stream_etl.sources import AssignmentListener
from stream_etl.testing import ListReader, ListSource, MemorySink, MemoryWriter

Verdict = Literal["keep", "drop", "moved"]


class StagingSink(MemorySink):
    """A memory sink that stages: a write keeps the table aside until commit_staged."""

    def __init__(self, name: str = "out", *, fail_writes: bool = False) -> None:
        super().__init__(name)
        self.fail_writes = fail_writes
        self.writes = 0
        self.staged_commits = 0

    def open(self, ctx: RunContext) -> StagingWriter:
        return StagingWriter(self)


class StagingWriter(MemoryWriter):
    sink: StagingSink

    def stager(self, snapshot: Snapshot, table: pa.Table) -> Callable[[], Staged]:
        def write() -> Staged:
            self.sink.writes += 1
            if self.sink.fail_writes:
                msg = "the store refused the staged files"
                raise SinkUnavailable(msg, table_uri="memory://out")
            return Staged(rows=table.num_rows, schema=table.schema, handle=table)

        return write

    def commit_staged(
        self, snapshot: Snapshot, staged: Sequence[Staged], positions: dict[SourcePartition, int]
    ) -> CommitInfo:
        self.sink.staged_commits += 1
        return self.commit(snapshot, pa.concat_tables([s.handle for s in staged]), positions)


class JoiningSource(ListSource):
    """Reads every partition "during a join": ``awaiting_assignment`` until the sink saw
    ``after`` staged writes (or the source ran dry), then the verdict."""

    def __init__(self, records: Sequence[dict[str, Any]], sink: StagingSink, verdict: Verdict, after: int) -> None:
        super().__init__(records, partitions=2)
        self.sink, self.verdict, self.after = sink, verdict, after

    def open(self, ctx: RunContext, listener: AssignmentListener) -> JoiningReader:
        return JoiningReader(self, listener)


class JoiningReader(ListReader):
    source: JoiningSource

    def __init__(self, source: JoiningSource, listener: AssignmentListener) -> None:
        super().__init__(source, listener)
        self.awaiting = True
        self.dry = 0

    @property
    def awaiting_assignment(self) -> bool:  # type: ignore[override]
        return self.awaiting

    def poll(self, max_records: int, timeout: float) -> Chunk | None:
        if self.awaiting and (self.source.sink.writes >= self.source.after or self.dry > 50):
            self._verdict()
        chunk = super().poll(max_records, timeout)
        if chunk is None:
            self.dry += 1
        return chunk

    def _verdict(self) -> None:
        partitions = self._partitions
        if self.source.verdict == "drop":  # another generation: what was read is not ours
            self.listener.on_revoked(partitions)
            resume = self.listener.on_assigned(partitions)
            self._cursor = [resume.get(sp, 0) for sp in partitions]
            self._ended.clear()
        elif self.source.verdict == "moved":  # another writer committed partition 0's first 10 records
            other = self.source.sink.open(RunContext("job"))
            ids = [i for i in range(0, 20, 2) if _valid(i)]
            other.commit(other.snapshot(), pa.table({"id": pa.array(ids, pa.int64())}), {partitions[0]: 9})
        self.awaiting = False


def _valid(i: int) -> bool:
    return float(i % 10) - 2.0 >= 0


def _orders(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "amount": float(i % 10) - 2.0} for i in range(n)]


def _run(sink: StagingSink, verdict: Verdict, *, records: int = 400, after: int = 3) -> RunSummary:
    topology = Topology("orders", max_batch_records=40)
    topology.source(JoiningSource(_orders(records), sink, verdict, after)).filter("amount >= 0").sink(sink)
    local = topology.with_connectors(dead_letters=MemorySink("dead"))
    return RunLoop(local, RunContext("job", mode="until_caught_up")).run()


def _assert_once(sink: MemorySink, records: int) -> None:
    ids = sink.table()["id"].to_pylist()
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    assert sorted(ids) == [i for i in range(records) if _valid(i)]


def test_batches_read_during_the_join_are_written_ahead_and_committed_at_once() -> None:
    sink = StagingSink()

    summary = _run(sink, "keep")

    _assert_once(sink, 400)
    assert sink.writes >= 3 and sink.staged_commits == 1
    # one commit of the staged batches, at most one per batch after the verdict (fewer when
    # batches prepared while a commit ran were merged into one)
    assert summary.stats["commits"] <= 1 + (summary.stats["batches"] - sink.writes)
    stats = summary.stats
    assert stats["records_in"] == stats["written"] + stats["filtered"] + stats["dead_lettered"] == 400


@pytest.mark.parametrize("verdict", ["drop", "moved"])
def test_staged_batches_are_dropped_and_read_again_when_not_ours(verdict: Verdict) -> None:
    sink = StagingSink()

    summary = _run(sink, verdict)

    _assert_once(sink, 400)
    assert sink.writes >= 3 and sink.staged_commits == 0
    assert summary.stats["stale_batches"] + summary.stats["conflicts"] >= 1


def test_a_failed_write_ahead_drops_every_staged_batch_and_reads_them_again() -> None:
    sink = StagingSink(fail_writes=True)

    summary = _run(sink, "keep")

    _assert_once(sink, 400)
    assert sink.staged_commits == 0
    assert summary.stats["conflicts"] == 1
