"""The Parquet sink on local disk and on S3 (SeaweedFS): names from positions, manifests,
replays that overwrite, files of crashed commits removed, resume positions."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from connectors.parquet import ParquetSink, read_table
from connectors.parquet.sink import ParquetSnapshot, file_tag
from stream_etl import RunContext, Topology
from stream_etl.errors import ConfigurationError, PositionConflict
from stream_etl.records import SourcePartition
from stream_etl.runloop import RunLoop
from stream_etl.testing import ListSource
from tests.services import Services

P0, P1 = SourcePartition("orders", 0), SourcePartition("orders", 1)


def _rows(ids: list[int]) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "country": ["DE" if i % 2 else "FR" for i in ids]})


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.parquet"))


def test_files_are_named_after_positions_and_positions_read_back(tmp_path: Path) -> None:
    root = tmp_path / "orders"
    writer = ParquetSink(str(root), partition_by=["country"]).open(RunContext(app_id="job"))
    snapshot = writer.snapshot()
    assert snapshot.position(P0) is None

    writer.commit(snapshot, _rows([1, 2, 3]), {P0: 9, P1: 4}, cursors={P0: "c9"})
    writer.commit(writer.snapshot(), _rows([4]), {P0: 12})

    assert _files(root) == [
        "country=DE/part-orders-0-0-9_orders-1-0-4-0.parquet",
        "country=FR/part-orders-0-0-9_orders-1-0-4-0.parquet",
        "country=FR/part-orders-0-10-12-0.parquet",
    ]
    reopened = ParquetSink(str(root)).open(RunContext(app_id="job"))
    assert reopened.read_positions([P0, P1, SourcePartition("orders", 2)]) == {P0: 12, P1: 4}
    assert reopened.read_cursors([P0]) == {P0: "c9"}
    assert ParquetSink(str(root)).open(RunContext(app_id="other")).read_positions([P0]) == {}
    table = read_table(str(root))
    assert table is not None and sorted(table["id"].to_pylist()) == [1, 2, 3, 4]
    assert table.schema.field("country").type == pa.string()
    plain = ds.dataset(str(root), partitioning="hive").to_table()  # skips _stream_etl
    assert sorted(plain["id"].to_pylist()) == [1, 2, 3, 4]


def test_a_replay_of_the_same_range_overwrites_its_files(tmp_path: Path) -> None:
    """A crash after the data files and before the manifest: the replay writes the same names."""
    root = tmp_path / "t"
    writer = ParquetSink(str(root), partition_by=["country"]).open(RunContext(app_id="job"))
    snapshot = writer.snapshot()
    writer._write_files(_rows([1, 2]), file_tag(snapshot, {P0: 1}))  # the crashed attempt: no manifest

    replay = ParquetSink(str(root), partition_by=["country"]).open(RunContext(app_id="job"))
    replay.commit(replay.snapshot(), _rows([1, 2]), {P0: 1})

    assert len(_files(root)) == 2
    table = ds.dataset(str(root), partitioning="hive").to_table()
    assert sorted(table["id"].to_pylist()) == [1, 2]


def test_files_of_a_crashed_commit_with_other_boundaries_are_removed_on_open(tmp_path: Path) -> None:
    root = tmp_path / "t"
    writer = ParquetSink(str(root), partition_by=["country"]).open(RunContext(app_id="job"))
    writer.commit(writer.snapshot(), _rows([1]), {P0: 0})
    snapshot = writer.snapshot()
    writer._write_files(_rows([2, 3, 4]), file_tag(snapshot, {P0: 3}))  # crashed: rows 2-4, no manifest
    assert len(_files(root)) == 3

    replay = ParquetSink(str(root), partition_by=["country"]).open(RunContext(app_id="job"))
    assert len(_files(root)) == 1  # the uncommitted files are gone
    replay.commit(replay.snapshot(), _rows([2]), {P0: 1})  # a smaller batch this time
    replay.commit(replay.snapshot(), _rows([3, 4]), {P0: 3})

    table = ds.dataset(str(root), partitioning="hive").to_table()
    assert sorted(table["id"].to_pylist()) == [1, 2, 3, 4]


def test_a_commit_of_a_version_already_committed_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "t"
    first = ParquetSink(str(root)).open(RunContext(app_id="job"))
    second = ParquetSink(str(root)).open(RunContext(app_id="job"))
    stale = second.snapshot()
    first.commit(first.snapshot(), _rows([1]), {P0: 0})
    with pytest.raises(PositionConflict, match="another writer"):
        second.commit(stale, _rows([1]), {P0: 0})
    assert second.read_positions([P0]) == {P0: 0}


def test_positions_commit_without_rows_and_types_stay_alike(tmp_path: Path) -> None:
    root = tmp_path / "t"
    writer = ParquetSink(str(root)).open(RunContext(app_id="job"))
    writer.commit(writer.snapshot(), _rows([1]), {P0: 0})
    writer.commit(writer.snapshot(), None, {P0: 5})
    snapshot = writer.snapshot()
    assert snapshot.position(P0) == 5
    narrow = pa.table(
        {"id": pa.array([7], pa.int32()), "country": ["DE"], "__stream_etl_row": pa.array([0], pa.int32())}
    )
    assert writer.conform(narrow, snapshot).schema.field("id").type == pa.int64()


def test_long_tags_are_hashed() -> None:
    positions = {SourcePartition("a-very-long-topic-name", p): 10**12 for p in range(20)}
    tag = file_tag(ParquetSnapshot(version=0), positions)
    assert tag.startswith("20p-") and len(tag) < 60


def test_bad_configuration_fails_fast() -> None:
    with pytest.raises(ConfigurationError, match="directory"):
        ParquetSink("")
    with pytest.raises(ConfigurationError, match="compression"):
        ParquetSink("x", compression="brotli")  # type: ignore[arg-type]


def test_on_s3_through_a_topology_with_dead_letters(services: Services, unique: str) -> None:
    uri = f"s3://{services.bucket}/{unique}/files"
    records: list[object] = [{"id": i, "country": "DE" if i % 2 else "FR"} for i in range(50)] + [b"bad"]
    topology = Topology("files", max_batch_records=7)
    topology.source(ListSource(records, partitions=2)).sink(ParquetSink(uri, partition_by=["country"]))
    ctx = RunContext(app_id=unique, settings=services.settings(), mode="until_caught_up")

    summary = RunLoop(topology, ctx).run()
    again = RunLoop(topology, ctx).run()

    table = read_table(uri, services.settings())
    assert table is not None and sorted(table["id"].to_pylist()) == list(range(50))
    dead = read_table(f"{uri}_dead_letters", services.settings())
    assert dead is not None and dead["raw"].to_pylist() == [b"bad"]
    assert summary.stats["written"] == 50 and again.stats["written"] == 0
