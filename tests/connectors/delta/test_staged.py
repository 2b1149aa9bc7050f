"""Staged commits of the Delta sink against real S3 (SeaweedFS): data files written ahead of
their commit (rows read during a group join), then committed at once with the positions."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from connectors.delta import DeltaSink, txn_app_id
from connectors.delta.sink import STAGED_DIR, DeltaSnapshot, DeltaWriter
from stream_etl import RunContext
from stream_etl.errors import PositionConflict
from stream_etl.records import SourcePartition
from stream_etl.sinks import Staged
from tests.services import Services

P0, P1 = SourcePartition("orders", 0), SourcePartition("orders", 1)


def _ctx(services: Services, app_id: str) -> RunContext:
    return RunContext(app_id=app_id, settings=services.settings())


def _stage(writer: DeltaWriter, snapshot: DeltaSnapshot, table: pa.Table) -> Staged:
    write = writer.stager(snapshot, table)
    assert write is not None, "a plain append was not staged"
    return write()


def _rows(ids: list[int], country: str = "DE") -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "country": [country] * len(ids),
            "ts": pa.array([i * 1_000_000 for i in ids], pa.timestamp("us", "UTC")),
        }
    )


def test_staged_rows_are_invisible_until_one_commit_lands_them_with_the_positions(
    services: Services, table_uri: str, unique: str
) -> None:
    writer = DeltaSink(table_uri, partition_by=["country"]).open(_ctx(services, unique))
    snapshot = writer.snapshot()
    first = _stage(writer, snapshot, _rows([1, 2, 3]))
    second = _stage(writer, snapshot, _rows([4, 5], "FR"))
    assert writer.read_positions([P0]) == {}  # nothing committed: no table yet

    info = writer.commit_staged(snapshot, [first, second], {P0: 40, P1: 7})

    table = DeltaTable(table_uri, storage_options=services.storage_options())
    assert info.rows == 5 and info.version == table.version() == 0
    assert sorted(table.to_pyarrow_table()["id"].to_pylist()) == [1, 2, 3, 4, 5]
    assert table.metadata().partition_columns == ["country"]
    assert table.transaction_version(txn_app_id(unique, P0)) == 40
    assert table.transaction_version(txn_app_id(unique, P1)) == 7
    assert json.loads(table.history()[0]["stream_etl.positions"]) == {"orders-0": 40, "orders-1": 7}
    adds = pa.table(table.get_add_actions(flatten=True))
    assert all(path.startswith(f"{STAGED_DIR}/") for path in adds["path"].to_pylist())
    assert pc.sum(adds["num_records"]).as_py() == 5  # delta-rs's statistics, carried over
    assert sorted(adds["min.id"].to_pylist()) == [1, 4] and sorted(adds["max.id"].to_pylist()) == [3, 5]
    # A filter that skips files by their statistics still finds the right rows.
    assert table.to_pyarrow_dataset().to_table(filter=pc.field("id") >= 4).num_rows == 2
    for staged in (first, second):  # the scratch tables' logs are gone: only the table holds the files
        assert not DeltaTable.is_deltatable(staged.handle.location, services.storage_options())


def test_staged_rows_append_to_an_existing_table(services: Services, table_uri: str, unique: str) -> None:
    writer = DeltaSink(table_uri).open(_ctx(services, unique))
    writer.commit(writer.snapshot(), _rows([1]), {P0: 1})
    snapshot = writer.snapshot()
    staged = [_stage(writer, snapshot, _rows([2, 3])), _stage(writer, snapshot, _rows([4]))]

    writer.commit_staged(snapshot, staged, {P0: 4})

    table = DeltaTable(table_uri, storage_options=services.storage_options())
    assert table.version() == 1
    assert sorted(table.to_pyarrow_table()["id"].to_pylist()) == [1, 2, 3, 4]
    assert writer.read_positions([P0]) == {P0: 4}


def test_a_staged_commit_is_fenced_like_any_commit(services: Services, table_uri: str, unique: str) -> None:
    writer = DeltaSink(table_uri).open(_ctx(services, unique))
    writer.commit(writer.snapshot(), _rows([0]), {P0: 10})
    stale = writer.snapshot()
    staged = _stage(writer, stale, _rows([11, 12]))
    write_deltalake(  # the partition's new owner commits meanwhile
        DeltaTable(table_uri, storage_options=services.storage_options()),
        _rows([13]),
        mode="append",
        commit_properties=CommitProperties(app_transactions=[Transaction(txn_app_id(unique, P0), 20)]),
    )

    try:
        writer.commit_staged(stale, [staged], {P0: 12})
    except PositionConflict:
        pass
    else:
        raise AssertionError("a staged commit on a stale snapshot landed")
    table = DeltaTable(table_uri, storage_options=services.storage_options())
    assert sorted(table.to_pyarrow_table()["id"].to_pylist()) == [0, 13]
    assert table.transaction_version(txn_app_id(unique, P0)) == 20


def test_only_plain_appends_are_staged(services: Services, table_uri: str, unique: str) -> None:
    """A schema change or a table feature delta-rs's write path enforces: committed the usual way."""
    writer = DeltaSink(table_uri).open(_ctx(services, unique))
    writer.commit(writer.snapshot(), _rows([1]), {P0: 1})
    assert writer.stager(writer.snapshot(), _rows([2]).append_column("extra", pa.array(["x"]))) is None
    assert writer.stager(writer.snapshot(), _rows([2]).drop_columns(["ts"])) is None

    DeltaTable(table_uri, storage_options=services.storage_options()).alter.add_constraint({"positive": "id > 0"})
    assert writer.stager(writer.snapshot(), _rows([2])) is None
