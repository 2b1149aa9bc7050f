"""The Postgres sink against the machine's Postgres: COPY, upsert, schema, positions, fencing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from connectors.postgres import PostgresSink
from connectors.postgres.copy import copy_payload, last_per_key
from stream_etl import RunContext, Topology
from stream_etl.dead_letters import DEAD_LETTER_SCHEMA
from stream_etl.errors import ConfigurationError, PositionConflict, SinkUnavailable
from stream_etl.records import LINEAGE, SourcePartition
from stream_etl.runloop import RunLoop
from stream_etl.settings import Settings
from stream_etl.testing import ListSource

#: The machine's Postgres is a real service: `make test-fast` (-m "not services") skips these.
pytestmark = pytest.mark.services

P0, P1 = SourcePartition("orders", 0), SourcePartition("orders", 1)


def _ctx(app_id: str = "pg-test") -> RunContext:
    return RunContext(app_id=app_id)


def _rows(ids: list[int], names: list[str] | None = None) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "name": names or [f"n{i}" for i in ids]})


def _select(dsn: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchall()


def _conformed(writer, table: pa.Table, snapshot):  # type: ignore[no-untyped-def]
    lineage = pa.array(range(table.num_rows), pa.int32())
    return writer.conform(table.append_column(LINEAGE, lineage), snapshot).drop_columns([LINEAGE])


def test_append_creates_the_table_and_stores_positions_in_the_same_transaction(
    dsn: str, pg_table: str, open_writer: Callable[..., Any]
) -> None:
    writer = open_writer(PostgresSink(pg_table, dsn=dsn), _ctx())
    snapshot = writer.snapshot()
    assert snapshot.position(P0) is None and snapshot.columns is None

    writer.commit(snapshot, _rows([1, 2, 3]), {P0: 41, P1: 7}, cursors={P0: "c-41"})

    assert _select(dsn, f'SELECT id, name FROM "{pg_table}" ORDER BY id') == [(1, "n1"), (2, "n2"), (3, "n3")]
    assert writer.read_positions([P0, P1, SourcePartition("orders", 2)]) == {P0: 41, P1: 7}
    assert writer.read_cursors([P0, P1]) == {P0: "c-41"}
    assert writer.snapshot().columns == {"id": "bigint", "name": "text"}
    writer.commit(writer.snapshot(), _rows([4]), {P0: 42})
    assert _select(dsn, f'SELECT count(*) FROM "{pg_table}"') == [(4,)]
    assert writer.summary()["rows"] == 4


def test_upsert_keeps_the_last_row_per_key_within_and_across_batches(
    dsn: str, pg_table: str, open_writer: Callable[..., Any]
) -> None:
    writer = open_writer(PostgresSink(pg_table, dsn=dsn, mode="upsert", key=["id"]), _ctx())
    writer.commit(writer.snapshot(), _rows([1, 2, 1, 3], ["a", "b", "c", "d"]), {P0: 3})
    writer.commit(writer.snapshot(), _rows([2, 4, 2], ["e", "f", "g"]), {P0: 6})

    assert _select(dsn, f'SELECT id, name FROM "{pg_table}" ORDER BY id') == [(1, "c"), (2, "g"), (3, "d"), (4, "f")]
    primary_key = _select(
        dsn,
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
        f" WHERE i.indrelid = '\"{pg_table}\"'::regclass AND i.indisprimary",
    )
    assert primary_key == [("id",)]


def test_last_per_key_keeps_order_of_last_occurrences() -> None:
    table = pa.table({"k": [1, 2, 1, 3, 2], "a": ["x", "y", "z", "w", "v"], "b": [0, 0, 1, 0, 0]})
    assert last_per_key(table, ["k"]).to_pylist() == [
        {"k": 1, "a": "z", "b": 1},
        {"k": 3, "a": "w", "b": 0},
        {"k": 2, "a": "v", "b": 0},
    ]
    assert last_per_key(table, ["k", "b"]).num_rows == 4


def test_new_columns_are_added_and_values_cast_to_the_table(
    dsn: str, pg_table: str, open_writer: Callable[..., Any]
) -> None:
    writer = open_writer(PostgresSink(pg_table, dsn=dsn), _ctx())
    writer.commit(writer.snapshot(), _rows([1]), {P0: 0})
    snapshot = writer.snapshot()
    later = pa.table({"id": pa.array([2], pa.int32()), "name": ["x"], "score": [1.5]})
    conformed = _conformed(writer, later, snapshot)
    assert conformed.schema.field("id").type == pa.int64()

    writer.commit(snapshot, conformed, {P0: 1})

    assert writer.snapshot().columns == {"id": "bigint", "name": "text", "score": "double precision"}
    assert _select(dsn, f'SELECT id, score FROM "{pg_table}" ORDER BY id') == [(1, None), (2, 1.5)]


def test_strict_schema_refuses_unknown_columns(dsn: str, pg_table: str, open_writer: Callable[..., Any]) -> None:
    writer = open_writer(PostgresSink(pg_table, dsn=dsn, schema_mode="strict"), _ctx())
    writer.commit(writer.snapshot(), _rows([1]), {P0: 0})
    with pytest.raises(ValueError, match="schema_mode='merge'"):
        _conformed(writer, pa.table({"id": [2], "extra": ["x"]}), writer.snapshot())


def test_a_commit_on_a_stale_snapshot_is_fenced_and_leaves_nothing(
    dsn: str, pg_table: str, open_writer: Callable[..., Any]
) -> None:
    """A worker that lost its partition must not commit after the new owner did."""
    zombie = open_writer(PostgresSink(pg_table, dsn=dsn), _ctx())
    owner = open_writer(PostgresSink(pg_table, dsn=dsn), _ctx())
    zombie.commit(zombie.snapshot(), _rows([1]), {P0: 0})
    stale = zombie.snapshot()
    owner.commit(owner.snapshot(), _rows([2]), {P0: 5})

    with pytest.raises(PositionConflict, match="moved since"):
        zombie.commit(stale, _rows([3]), {P0: 4})

    assert _select(dsn, f'SELECT id FROM "{pg_table}" ORDER BY id') == [(1,), (2,)]
    assert owner.read_positions([P0]) == {P0: 5}
    zombie.commit(zombie.snapshot(), _rows([6]), {P0: 6})  # the connection is usable after the conflict


def test_two_first_commits_of_one_partition_conflict(dsn: str, pg_table: str, open_writer: Callable[..., Any]) -> None:
    first = open_writer(PostgresSink(pg_table, dsn=dsn), _ctx())
    second = open_writer(PostgresSink(pg_table, dsn=dsn), _ctx())
    stale = second.snapshot()  # no position stored yet
    first.commit(first.snapshot(), _rows([1]), {P0: 0})
    with pytest.raises(PositionConflict):
        second.commit(stale, _rows([2]), {P0: 1})
    assert _select(dsn, f'SELECT id FROM "{pg_table}"') == [(1,)]


def test_positions_are_per_table_and_per_app_id(dsn: str, pg_table: str, open_writer: Callable[..., Any]) -> None:
    one = open_writer(PostgresSink(pg_table, dsn=dsn), _ctx("job-a"))
    other = open_writer(PostgresSink(pg_table, dsn=dsn), _ctx("job-b"))
    one.commit(one.snapshot(), _rows([1]), {P0: 10})
    assert other.read_positions([P0]) == {}
    assert other.snapshot().position(P0) is None


def test_nested_binary_timestamps_and_nulls_round_trip(
    dsn: str, pg_table: str, open_writer: Callable[..., Any]
) -> None:
    stamp = dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)
    rows = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "raw": pa.array([b"\x00\xff{", None], pa.binary()),
            "tags": pa.array([["a", 'b"c'], None], pa.list_(pa.string())),
            "at": pa.array([stamp, None], pa.timestamp("us", tz="UTC")),
            "text": ["", None],
            "ok": [True, None],
            "day": pa.array([dt.date(2026, 1, 2), None]),
        }
    )
    writer = open_writer(PostgresSink(pg_table, dsn=dsn), _ctx())
    writer.commit(writer.snapshot(), rows, {P0: 1})

    got = _select(dsn, f'SELECT id, raw, tags, at, text, ok, day FROM "{pg_table}" ORDER BY id')
    assert got == [
        (1, b"\x00\xff{", ["a", 'b"c'], stamp, "", True, dt.date(2026, 1, 2)),
        (2, None, None, None, None, None, None),
    ]
    assert b'""' in copy_payload(rows.select(["text"]))


def test_bad_configuration_fails_fast() -> None:
    with pytest.raises(ConfigurationError, match="needs key"):
        PostgresSink("t", mode="upsert")
    with pytest.raises(ConfigurationError, match="only applies"):
        PostgresSink("t", key=["id"])
    with pytest.raises(ConfigurationError, match="STREAM_ETL_POSTGRES_DSN"):
        PostgresSink("t").open(_ctx())
    with pytest.raises(ConfigurationError, match="invalid"):
        PostgresSink("t", dsn="nonsense=1").open(_ctx())


def test_the_dsn_setting_is_used_when_the_sink_names_none(
    dsn: str, pg_table: str, open_writer: Callable[..., Any]
) -> None:
    ctx = RunContext(app_id="pg-test", settings=Settings.from_environment({"STREAM_ETL_POSTGRES_DSN": dsn}))
    writer = open_writer(PostgresSink(pg_table), ctx)
    writer.commit(writer.snapshot(), _rows([1]), {P0: 0})
    assert writer.read_positions([P0]) == {P0: 0}


def test_a_topology_dead_letters_bad_rows_into_postgres_too(dsn: str, pg_table: str) -> None:
    """The default dead-letter destination of a Postgres sink is a Postgres table, exactly once too."""
    records: list[object] = [
        {"id": 1, "name": "a"},
        b"not json",
        {"id": None, "name": "no key"},
        {"id": 1, "name": "b"},
    ]
    topology = Topology("pg")
    topology.source(ListSource(records)).sink(PostgresSink(pg_table, dsn=dsn, mode="upsert", key=["id"]))
    ctx = RunContext(app_id="pg-topology", mode="until_caught_up")

    summary = RunLoop(topology, ctx).run()

    assert _select(dsn, f'SELECT id, name FROM "{pg_table}"') == [(1, "b")]
    dead = _select(dsn, f'SELECT step, "offset", raw FROM "{pg_table}_dead_letters" ORDER BY "offset"')
    assert dead == [("decode", 1, b"not json"), ("sink:" + pg_table, 2, b'{"id":null,"name":"no key"}')]
    columns = _select(
        dsn,
        "SELECT column_name FROM information_schema.columns WHERE table_name = "
        f"'{pg_table}_dead_letters' ORDER BY ordinal_position",
    )
    assert [c for (c,) in columns] == DEAD_LETTER_SCHEMA.names
    assert summary.stats["records_in"] == 4
    assert summary.stats["written"] + summary.stats["dead_lettered"] == 4
    assert RunLoop(topology, ctx).run().stats["written"] == 0  # a rerun finds everything stored


def test_a_dropped_connection_is_transient_and_the_writer_reconnects(
    dsn: str, pg_table: str, open_writer: Callable[..., Any]
) -> None:
    writer = open_writer(PostgresSink(pg_table, dsn=dsn), _ctx())
    writer.commit(writer.snapshot(), _rows([1]), {P0: 0})
    pid = writer._conn.info.backend_pid
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    with pytest.raises(SinkUnavailable):
        writer.snapshot()
    writer.commit(writer.snapshot(), _rows([2]), {P0: 1})  # a new connection

    assert _select(dsn, f'SELECT id FROM "{pg_table}" ORDER BY id') == [(1,), (2,)]
    assert writer.read_positions([P0]) == {P0: 1}


def test_workers_owning_different_partitions_commit_side_by_side(
    dsn: str, pg_table: str, open_writer: Callable[..., Any]
) -> None:
    """Two workers of one job share a table: each commit only fences its own partitions."""
    a = open_writer(PostgresSink(pg_table, dsn=dsn, mode="upsert", key=["id"]), _ctx())
    b = open_writer(PostgresSink(pg_table, dsn=dsn, mode="upsert", key=["id"]), _ctx())
    a.commit(a.snapshot(), _rows([1]), {P0: 0})
    snapshot_a, snapshot_b = a.snapshot(), b.snapshot()

    a.commit(snapshot_a, _rows([2]), {P0: 1})
    b.commit(snapshot_b, _rows([3]), {P1: 0})  # planned before a's commit, on another partition

    assert a.read_positions([P0, P1]) == {P0: 1, P1: 0}
    assert _select(dsn, f'SELECT id FROM "{pg_table}" ORDER BY id') == [(1,), (2,), (3,)]
