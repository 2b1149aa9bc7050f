"""The Delta sink against real S3 (SeaweedFS): positions, fencing, schemas, errors."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from connectors.delta import DeltaSink, txn_app_id
from stream_etl import RunContext, Topology
from stream_etl.checkpoint import plan_commit
from stream_etl.errors import ConfigurationError, PositionConflict, SinkUnavailable
from stream_etl.records import LINEAGE, SourcePartition
from stream_etl.runloop import RunLoop
from stream_etl.settings import Settings
from stream_etl.testing import ListSource, MemorySink, TestRun
from tests.services import Services

P0 = SourcePartition("orders", 0)


def _ctx(services: Services, app_id: str) -> RunContext:
    return RunContext(app_id=app_id, settings=services.settings())


def _rows(ids: list[int]) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "country": ["DE"] * len(ids)})


def test_rows_and_positions_land_in_one_commit(services: Services, table_uri: str, unique: str) -> None:
    writer = DeltaSink(table_uri, partition_by=["country"]).open(_ctx(services, unique))
    snapshot = writer.snapshot()
    assert snapshot.position(P0) is None

    writer.commit(snapshot, _rows([1, 2, 3]), {P0: 41})

    table = DeltaTable(table_uri, storage_options=services.storage_options())
    assert table.version() == 0
    assert table.metadata().partition_columns == ["country"]
    assert table.transaction_version(txn_app_id(unique, P0)) == 41
    assert writer.read_positions([P0, SourcePartition("orders", 1)]) == {P0: 41}
    history = table.history()[0]
    assert history["stream_etl.app_id"] == unique
    assert '"orders-0": 41' in history["stream_etl.positions"]


def test_positions_commit_even_without_rows(services: Services, table_uri: str, unique: str) -> None:
    writer = DeltaSink(table_uri).open(_ctx(services, unique))
    writer.commit(writer.snapshot(), _rows([1]), {P0: 1})

    writer.commit(writer.snapshot(), None, {P0: 9})

    assert writer.read_positions([P0]) == {P0: 9}
    assert DeltaTable(table_uri, storage_options=services.storage_options()).to_pyarrow_table().num_rows == 1


def test_a_commit_on_a_stale_snapshot_is_fenced(services: Services, table_uri: str, unique: str) -> None:
    """A worker that lost its partition must not commit after the new owner did."""
    writer = DeltaSink(table_uri).open(_ctx(services, unique))
    writer.commit(writer.snapshot(), _rows([0]), {P0: 10})
    stale = writer.snapshot()
    # The new owner of the partition commits records 11..20 meanwhile.
    new_owner = DeltaTable(table_uri, storage_options=services.storage_options())
    write_deltalake(
        new_owner,
        _rows([11]),
        mode="append",
        commit_properties=CommitProperties(app_transactions=[Transaction(txn_app_id(unique, P0), 20)]),
    )

    with pytest.raises(PositionConflict):
        writer.commit(stale, _rows([11, 12]), {P0: 15})

    fresh = writer.snapshot()
    assert fresh.position(P0) == 20
    assert DeltaTable(table_uri, storage_options=services.storage_options()).to_pyarrow_table().num_rows == 2


def test_a_fresh_snapshot_drops_rows_already_committed(services: Services, table_uri: str, unique: str) -> None:
    from stream_etl.batcher import Batcher, BatchLimits
    from stream_etl.records import Chunk, PartitionRegistry

    registry = PartitionRegistry()
    registry.id_of(P0)
    batcher = Batcher(BatchLimits())
    batcher.add(Chunk(values=[b"{}"] * 4, pids=[0] * 4, positions=[10, 11, 12, 13], nbytes=8))
    batch = batcher.close(generation=0)
    writer = DeltaSink(table_uri).open(_ctx(services, unique))
    writer.commit(writer.snapshot(), _rows([10, 11]), {P0: 11})

    rows = _rows([10, 11, 12, 13]).append_column(LINEAGE, pa.array([0, 1, 2, 3], pa.int32()))
    plan = plan_commit(writer.snapshot(), rows, batch, registry, required=True)

    assert plan is not None and plan.table is not None
    assert plan.table["id"].to_pylist() == [12, 13]
    assert plan.positions == {P0: 13}
    assert plan.replayed is not None and plan.replayed.to_pylist() == [0, 1]


def test_values_that_do_not_fit_the_table_are_dead_lettered(services: Services, table_uri: str, unique: str) -> None:
    """delta-rs alone would cast int64 into an existing int32 column silently; we refuse per row."""
    write_deltalake(table_uri, pa.table({"id": pa.array([1], pa.int32())}), storage_options=services.storage_options())
    topology = Topology("narrow")
    topology.source(ListSource([])).sink(DeltaSink(table_uri))

    result = _run_with_delta(services, topology, [{"id": 2}, {"id": 2**40}, {"id": 3}], unique)

    table = DeltaTable(table_uri, storage_options=services.storage_options()).to_pyarrow_table()
    assert sorted(table["id"].to_pylist()) == [1, 2, 3]
    assert result.dead_letters["step"].to_pylist() == ["sink:table"]
    assert result.dead_letters["raw"].to_pylist() == [b'{"id":1099511627776}']


@pytest.mark.parametrize("mode", ["merge", "strict"])
def test_new_columns_are_added_or_dead_lettered(services: Services, table_uri: str, unique: str, mode: str) -> None:
    write_deltalake(table_uri, pa.table({"id": pa.array([1], pa.int64())}), storage_options=services.storage_options())
    topology = Topology("columns")
    topology.source(ListSource([])).sink(DeltaSink(table_uri, schema_mode=mode))  # type: ignore[arg-type]

    result = _run_with_delta(services, topology, [{"id": 2}, {"id": 3, "extra": "x"}], unique)

    table = DeltaTable(table_uri, storage_options=services.storage_options()).to_pyarrow_table()
    if mode == "merge":
        assert table.sort_by("id").to_pylist() == [
            {"id": 1, "extra": None},
            {"id": 2, "extra": None},
            {"id": 3, "extra": "x"},
        ]
        assert result.dead_letters.num_rows == 0
    else:
        assert sorted(table["id"].to_pylist()) == [1, 2]
        assert "schema_mode='merge'" in result.dead_letters["error"][0].as_py()


@pytest.mark.parametrize("mode", ["merge", "strict"])
def test_a_rescue_column_keeps_unknown_fields_and_misfits_as_json(
    services: Services, table_uri: str, unique: str, mode: str
) -> None:
    write_deltalake(table_uri, pa.table({"id": pa.array([1], pa.int64())}), storage_options=services.storage_options())
    topology = Topology("rescue")
    sink = DeltaSink(table_uri, schema_mode=mode, rescue_column="_rescued")  # type: ignore[arg-type]
    topology.source(ListSource([])).sink(sink)

    records = [{"id": "2"}, {"id": "seven", "extra": "x"}, {"id": "4", "extra": "é"}]  # the field became text
    result = _run_with_delta(services, topology, records, unique)

    table = DeltaTable(table_uri, storage_options=services.storage_options()).to_pyarrow_table().sort_by("id")
    assert result.dead_letters.num_rows == 0
    rows = [(r["id"], r["_rescued"], r.get("extra")) for r in table.to_pylist()]
    if mode == "strict":  # unknown fields are rescued, the table keeps its columns (plus the rescue column)
        assert table.column_names == ["id", "_rescued"]
        assert rows == [
            (1, None, None),
            (2, None, None),
            (4, '{"extra":"é"}', None),
            (None, '{"extra":"x","id":"seven"}', None),
        ]
    else:  # merge adds the new column; only the misfit value is rescued
        assert sorted(table.column_names) == ["_rescued", "extra", "id"]
        assert rows == [(1, None, None), (2, None, None), (4, None, "é"), (None, '{"id":"seven"}', "x")]


def test_a_changed_field_type_is_cast_when_lossless_and_dead_lettered_otherwise(
    services: Services, table_uri: str, unique: str
) -> None:
    write_deltalake(table_uri, pa.table({"id": pa.array([1], pa.int64())}), storage_options=services.storage_options())
    topology = Topology("changed", max_batch_records=2)  # a batch of strings, then one of floats
    topology.source(ListSource([])).sink(DeltaSink(table_uri, schema_mode="strict"))

    result = _run_with_delta(services, topology, [{"id": "2"}, {"id": "three"}, {"id": 4.0}, {"id": 4.5}], unique)

    table = DeltaTable(table_uri, storage_options=services.storage_options()).to_pyarrow_table()
    assert sorted(table["id"].to_pylist()) == [1, 2, 4]
    assert table.schema.field("id").type == pa.int64()
    assert sorted(result.dead_letters["raw"].to_pylist()) == [b'{"id":"three"}', b'{"id":4.5}']
    assert set(result.dead_letters["step"].to_pylist()) == {"sink:table"}


def test_a_local_path_works_too(tmp_path: Path, unique: str) -> None:
    writer = DeltaSink(str(tmp_path / "table")).open(RunContext(app_id=unique, settings=Settings()))
    writer.commit(writer.snapshot(), _rows([1, 2]), {P0: 2})
    assert DeltaTable(str(tmp_path / "table")).transaction_version(txn_app_id(unique, P0)) == 2


def test_a_missing_bucket_is_a_configuration_error(services: Services, unique: str) -> None:
    with pytest.raises(ConfigurationError, match="bucket 'no-such-bucket' does not exist"):
        DeltaSink("s3://no-such-bucket/t").open(_ctx(services, unique))


def test_an_unreachable_endpoint_is_a_transient_error(unique: str) -> None:
    settings = Settings(s3_endpoint_url="http://127.0.0.1:1", s3_access_key_id="x", s3_secret_access_key="y")
    with pytest.raises(SinkUnavailable, match="cannot reach S3 at http://127.0.0.1:1"):
        DeltaSink("s3://lake/t").open(RunContext(app_id=unique, settings=settings))


def _run_with_delta(services: Services, topology: Topology, records: list[dict[str, object]], app_id: str) -> TestRun:
    """Like run_topology, but keeps the real Delta sink: only the source and dead letters are in memory."""
    dead = MemorySink("dead")
    local = topology.with_connectors(source=ListSource(records), dead_letters=dead)
    ctx = RunContext(app_id=app_id, settings=services.settings(), mode="until_caught_up")
    return TestRun({}, dead, RunLoop(local, ctx).run())


@pytest.mark.parametrize(("compression", "codec"), [(None, "SNAPPY"), ("ZSTD", "ZSTD")], ids=["default", "zstd"])
def test_data_files_are_compressed(tmp_path: Path, unique: str, compression: str | None, codec: str) -> None:
    import pyarrow.parquet as pq

    uri = str(tmp_path / "table")
    writer = DeltaSink(uri, compression=compression).open(RunContext(app_id=unique, settings=Settings()))  # type: ignore[arg-type]
    writer.commit(writer.snapshot(), _rows(list(range(1000))), {P0: 999})

    files = DeltaTable(uri).file_uris()
    assert files
    assert pq.ParquetFile(files[0].removeprefix("file://")).metadata.row_group(0).column(0).compression == codec


def test_target_file_size_splits_a_batch_into_several_files(tmp_path: Path, unique: str) -> None:
    rows = pa.table({"id": pa.array(range(200_000), pa.int64()), "text": [f"row-{i:08d}" for i in range(200_000)]})
    sizes = {}
    for target in (None, 256 * 1024):
        uri = str(tmp_path / f"table-{target}")
        writer = DeltaSink(uri, target_file_size=target).open(RunContext(app_id=unique, settings=Settings()))
        writer.commit(writer.snapshot(), rows, {P0: 1})
        sizes[target] = len(DeltaTable(uri).file_uris())
    assert sizes[None] == 1
    assert sizes[256 * 1024] > 1


def test_cursors_are_stored_in_the_commit_and_found_again(services: Services, table_uri: str, unique: str) -> None:
    p1 = SourcePartition("orders", 1)
    writer = DeltaSink(table_uri).open(_ctx(services, unique))
    writer.commit(writer.snapshot(), _rows([1]), {P0: 5, p1: 7}, cursors={P0: "seq-5", p1: "seq-7"})
    writer.commit(writer.snapshot(), _rows([2]), {P0: 9}, cursors={P0: "seq-9"})
    writer.commit(writer.snapshot(), None, {p1: 8})  # a commit whose source gives no cursor

    found = DeltaSink(table_uri).open(_ctx(services, unique)).read_cursors([P0, p1, SourcePartition("orders", 2)])

    # p1's current position (8) was stored without a cursor: none is handed back for it
    assert found == {P0: "seq-9"}


def test_a_delta_table_serves_as_an_enrich_lookup(services: Services, table_uri: str, unique: str) -> None:
    from connectors.delta import DeltaLookup

    write_deltalake(
        table_uri, pa.table({"code": [1, 2], "name": ["a", "b"]}), storage_options=services.storage_options()
    )
    lookup = DeltaLookup(table_uri)

    assert lookup.load(_ctx(services, unique)).sort_by("code").to_pylist() == [
        {"code": 1, "name": "a"},
        {"code": 2, "name": "b"},
    ]
