"""Bookmarks on a real Delta table on S3: moved by hand, honoured by the sink, and safe
against a sink of the same app id committing at the same moment."""

from __future__ import annotations

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from connectors.delta import DeltaSink
from connectors.delta.bookmarks import move_bookmarks, read_bookmarks
from stream_etl import RunContext
from stream_etl.errors import PositionConflict
from stream_etl.records import SourcePartition
from tests.services import Services

P0, P1 = SourcePartition("orders", 0), SourcePartition("orders", 1)


def _rows(ids: list[int]) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64())})


def test_a_rewind_is_listed_and_a_reset_reads_as_no_position(services: Services, table_uri: str, unique: str) -> None:
    writer = DeltaSink(table_uri).open(RunContext(app_id=unique, settings=services.settings()))
    writer.commit(writer.snapshot(), _rows([1]), {P0: 10, P1: 20})
    writer.commit(writer.snapshot(), _rows([2]), {P0: 11})
    table = DeltaTable(table_uri, storage_options=services.storage_options())
    marks = {m.partition: m for m in read_bookmarks(table, app_id=unique)}
    assert (marks["orders-0"].position, marks["orders-0"].version, marks["orders-0"].how) == (11, 1, "sink")
    assert (marks["orders-1"].position, marks["orders-1"].version, marks["orders-1"].next_position) == (20, 0, 21)
    assert marks["orders-1"].kafka() == ("orders", 1)

    assert move_bookmarks(table, unique, {"orders-0": 4}, how="rewind") == 2
    assert writer.read_positions([P0, P1]) == {P0: 4, P1: 20}
    move_bookmarks(table, unique, {"orders-1": None}, how="reset")
    assert writer.read_positions([P0, P1]) == {P0: 4}  # forgotten: the source starts it per start_from
    marks = {m.partition: m for m in read_bookmarks(table, app_id=unique)}
    assert (marks["orders-0"].how, marks["orders-0"].version) == ("rewind", 2)
    assert (marks["orders-1"].how, marks["orders-1"].position, marks["orders-1"].next_position) == ("reset", None, None)
    assert DeltaTable(table_uri, storage_options=services.storage_options()).to_pyarrow_table().num_rows == 2


def test_a_rewind_and_a_sink_commit_of_the_same_app_id_never_both_land(
    services: Services, table_uri: str, unique: str
) -> None:
    writer = DeltaSink(table_uri).open(RunContext(app_id=unique, settings=services.settings()))
    writer.commit(writer.snapshot(), _rows([1]), {P0: 100})
    stale = DeltaTable(table_uri, storage_options=services.storage_options())  # the rewind reads here...
    writer.commit(writer.snapshot(), _rows([2]), {P0: 110})  # ...a worker commits...
    with pytest.raises(PositionConflict, match="stop the job"):  # ...so the rewind is refused
        move_bookmarks(stale, unique, {"orders-0": 49}, how="rewind")
    assert writer.read_positions([P0]) == {P0: 110}

    before_rewind = writer.snapshot()  # the worker reads its positions...
    fresh = DeltaTable(table_uri, storage_options=services.storage_options())
    move_bookmarks(fresh, unique, {"orders-0": 49}, how="rewind")  # ...a rewind lands...
    with pytest.raises(PositionConflict):  # ...and its commit, read before it, is refused by delta-rs
        writer.commit(before_rewind, _rows([3]), {P0: 120})
    after_rewind = writer.snapshot()
    assert after_rewind.position(P0) == 49


def test_a_worker_that_committed_further_never_commits_over_a_rewind(
    services: Services, table_uri: str, unique: str
) -> None:
    """A worker whose next commit reads a snapshot newer than the rewind: its batch was read
    from before the rewind, so the commit is refused and the worker re-seeks to the rewind."""
    writer = DeltaSink(table_uri).open(RunContext(app_id=unique, settings=services.settings()))
    writer.commit(writer.snapshot(), _rows([1]), {P0: 100, P1: 7})
    move_bookmarks(
        DeltaTable(table_uri, storage_options=services.storage_options()), unique, {"orders-0": 49}, how="rewind"
    )
    with pytest.raises(PositionConflict, match="moved back"):
        writer.commit(writer.snapshot(), _rows([2]), {P0: 120})
    assert writer.read_positions([P0]) == {P0: 49}
    writer.commit(writer.snapshot(), _rows([3]), {P0: 60, P1: 8})  # after the re-seek: from offset 50 on
    assert writer.read_positions([P0, P1]) == {P0: 60, P1: 8}
