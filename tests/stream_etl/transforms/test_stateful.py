"""Dedupe and windows: exact results, per partition, the same whatever the batch boundaries
and across restarts that restore state from snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from stream_etl import RunContext, Topology
from stream_etl.errors import ConfigurationError
from stream_etl.runloop import RunLoop
from stream_etl.testing import ListSource, MemorySink

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _run(
    topology: Topology,
    records: list[Any],
    *,
    batch: int,
    partitions: int = 1,
    sink: MemorySink | None = None,
    dead: MemorySink | None = None,
) -> tuple[MemorySink, MemorySink]:
    sink = sink or MemorySink("out")
    dead = dead or MemorySink("dead")
    local = topology.with_connectors(
        source=ListSource(records, partitions=partitions), sinks={"out": sink}, dead_letters=dead
    )
    local.limits = type(local.limits)(max_batch_records=batch)
    RunLoop(local, RunContext(app_id="stateful", mode="until_caught_up")).run()
    return sink, dead


def _rows(table: pa.Table, sort: list[str]) -> list[dict[str, Any]]:
    return table.sort_by([(c, "ascending") for c in sort]).to_pylist() if table.num_rows else []


# dedupe -------------------------------------------------------------------------------


def _dedupe_topology(**kwargs: Any) -> Topology:
    topology = Topology("dd")
    topology.source(ListSource([])).dedupe("user", "item", name="once", **kwargs).select("id", name="ids").sink(
        MemorySink("out"), name="out"
    )
    return topology


def test_dedupe_keeps_the_first_record_of_each_key() -> None:
    records = [
        {"id": 1, "user": "a", "item": 1},
        {"id": 2, "user": "a", "item": 1},
        {"id": 3, "user": "b", "item": 1},
        {"id": 4, "user": "a", "item": 2},
        {"id": 5, "user": "b", "item": 1},
        {"id": 6, "user": None, "item": 1},
        {"id": 7, "user": None, "item": 1},
        {"id": 8, "user": "ü", "item": 1},
        {"id": 9, "user": "ü", "item": 1},
    ]
    sink, _ = _run(_dedupe_topology(), records, batch=100)
    assert sorted(sink.table()["id"].to_pylist()) == [1, 3, 4, 6, 7, 8]  # null keys pass through


@pytest.mark.parametrize("batch", [1, 2, 3, 7, 100], ids=lambda b: f"batch-{b}")
def test_dedupe_across_batches_gives_the_same_result_whatever_the_batch_size(batch: int) -> None:
    records = [{"id": i, "user": f"u{i % 7}", "item": i % 3} for i in range(60)]
    sink, _ = _run(_dedupe_topology(), records, batch=batch)
    first = {}
    for r in records:
        first.setdefault((r["user"], r["item"]), r["id"])
    assert sorted(sink.table()["id"].to_pylist()) == sorted(first.values())


def test_dedupe_horizon_is_in_event_time_against_the_watermark() -> None:
    topology = Topology("dd")
    (
        topology.source(ListSource([]))
        .dedupe("user", time_column="ts", horizon=timedelta(seconds=10), name="once")
        .select("id", name="ids")
        .sink(MemorySink("out"), name="out")
    )
    records = [
        {"id": 1, "user": "a", "ts": _at(0)},
        {"id": 2, "user": "a", "ts": _at(5)},  # within 10 s of the first: duplicate
        {"id": 3, "user": "b", "ts": _at(12)},  # watermark 12
        {"id": 4, "user": "a", "ts": _at(8)},  # first 'a' (0) < 12 - 10: expired, kept
        {"id": 5, "user": "a", "ts": _at(13)},  # duplicate of id 4 (seen at 8 >= 13 - 10)
        {"id": 6, "user": "c", "ts": "not a time"},  # dead-lettered
    ]
    for batch in (1, 2, 6):
        sink, dead = _run(topology, records, batch=batch)
        assert sorted(sink.table()["id"].to_pylist()) == [1, 3, 4], batch
        assert dead.table()["step"].to_pylist() == ["once"]


def test_dedupe_state_survives_a_restart() -> None:
    topology = _dedupe_topology()
    sink, dead = MemorySink("out"), MemorySink("dead")
    first = [{"id": i, "user": f"u{i % 5}", "item": 0} for i in range(10)]
    _run(topology, first, batch=3, sink=sink, dead=dead)
    # a second run over more records of the same partition: the state comes back from snapshots
    _run(
        topology,
        first + [{"id": 10 + i, "user": f"u{i % 8}", "item": 0} for i in range(10)],
        batch=3,
        sink=sink,
        dead=dead,
    )
    assert sorted(sink.table()["id"].to_pylist()) == [0, 1, 2, 3, 4, 15, 16, 17]


def test_dedupe_needs_a_time_column_for_a_horizon() -> None:
    with pytest.raises(ConfigurationError, match="needs time_column"):
        Topology("t").source(ListSource([])).dedupe("user", horizon=timedelta(seconds=1))


# windows ------------------------------------------------------------------------------


def _window_topology(**kwargs: Any) -> Topology:
    topology = Topology("win")
    (
        topology.source(ListSource([]))
        .window(
            "ts",
            timedelta(seconds=10),
            group_by=["user"],
            name="per_10s",
            aggregates={
                "n": ("*", "count"),
                "total": ("amount", "sum"),
                "low": ("amount", "min"),
                "high": ("amount", "max"),
                "avg": ("amount", "mean"),
            },
            **kwargs,
        )
        .sink(MemorySink("out"), name="out")
    )
    return topology


def _events() -> list[dict[str, Any]]:
    return [
        {"user": "a", "amount": 1, "ts": _at(1)},
        {"user": "b", "amount": 2, "ts": _at(3)},
        {"user": "a", "amount": 3, "ts": _at(9)},
        {"user": "a", "amount": 4, "ts": _at(12)},  # watermark 12: [0, 10) closes (lateness 0)
        {"user": "b", "amount": 5, "ts": _at(2)},  # late for [0, 10): dead-lettered
        {"user": "a", "amount": 6, "ts": _at(11)},  # out of order, on time for [10, 20)
        {"user": "b", "amount": 7, "ts": _at(25)},  # closes [10, 20)
        {"user": "b", "amount": 8, "ts": _at(26)},  # [20, 30) stays open
    ]


EXPECTED = [
    {
        "user": "a",
        "window_start": T0,
        "window_end": T0 + timedelta(seconds=10),
        "n": 2,
        "total": 4,
        "low": 1,
        "high": 3,
        "avg": 2.0,
    },
    {
        "user": "b",
        "window_start": T0,
        "window_end": T0 + timedelta(seconds=10),
        "n": 1,
        "total": 2,
        "low": 2,
        "high": 2,
        "avg": 2.0,
    },
    {
        "user": "a",
        "window_start": T0 + timedelta(seconds=10),
        "window_end": T0 + timedelta(seconds=20),
        "n": 2,
        "total": 10,
        "low": 4,
        "high": 6,
        "avg": 5.0,
    },
]


@pytest.mark.parametrize("batch", [1, 2, 3, 8], ids=lambda b: f"batch-{b}")
def test_tumbling_windows_emit_closed_windows_once_whatever_the_batches(batch: int) -> None:
    sink, dead = _run(_window_topology(), _events(), batch=batch)
    assert _rows(sink.table(), ["window_start", "user"]) == EXPECTED
    assert dead.table()["error_class"].to_pylist() == ["LateEvent"]


def test_allowed_lateness_keeps_a_window_open_longer() -> None:
    sink, dead = _run(_window_topology(allowed_lateness=timedelta(seconds=5)), _events(), batch=2)
    rows = {(r["user"], r["window_start"]): r["n"] for r in sink.table().to_pylist()}
    assert rows[("b", T0)] == 2  # the late b@2 arrived while watermark 12 < 10 + 5
    assert dead.tables == []


def test_a_window_restored_from_snapshots_gives_the_same_result_as_one_run() -> None:
    events = _events()
    sink, dead = MemorySink("out"), MemorySink("dead")
    _run(_window_topology(), events[:4], batch=2, sink=sink, dead=dead)
    _run(_window_topology(), events, batch=3, sink=sink, dead=dead)
    assert _rows(sink.table(), ["window_start", "user"]) == EXPECTED
    assert dead.table()["error_class"].to_pylist() == ["LateEvent"]


def test_sliding_windows_count_a_record_in_each_window_it_falls_in() -> None:
    topology = Topology("slide")
    (
        topology.source(ListSource([]))
        .window("ts", timedelta(seconds=10), slide=timedelta(seconds=5), aggregates={"n": ("*", "count")}, name="w")
        .sink(MemorySink("out"), name="out")
    )
    events = [{"ts": _at(s)} for s in (1, 6, 7, 12, 30)]
    sink, _ = _run(topology, events, batch=2)
    counts = {r["window_start"]: r["n"] for r in sink.table().to_pylist()}
    # [25, 35) and [30, 40) are still open at watermark 30
    assert counts == {T0 - timedelta(seconds=5): 1, T0: 3, T0 + timedelta(seconds=5): 3, T0 + timedelta(seconds=10): 1}


def test_windows_are_per_partition() -> None:
    events = [{"user": "a", "amount": 1, "ts": _at(s)} for s in (1, 2, 15, 16)]
    sink, _ = _run(_window_topology(), events, batch=10, partitions=2)
    rows = sink.table().to_pylist()
    assert sorted(r["n"] for r in rows) == [1, 1]  # one [0, 10) row per partition


@pytest.mark.parametrize("batch", [1, 2, 3, 5], ids=lambda b: f"batch-{b}")
def test_float_sums_add_in_record_order_so_batches_never_change_the_last_digit(batch: int) -> None:
    topology = Topology("sums")
    (
        topology.source(ListSource([]))
        .window("ts", timedelta(seconds=10), aggregates={"total": ("x", "sum"), "avg": ("x", "mean")}, name="w")
        .sink(MemorySink("out"), name="out")
    )
    values = [1e16, 1.0, -1e16, 1.0, 0.1, 0.2]
    events = [{"x": v, "ts": _at(i)} for i, v in enumerate(values)] + [{"x": 0.0, "ts": _at(30)}]
    sink, _ = _run(topology, events, batch=batch)
    expected = 0.0
    for v in values:
        expected += v  # left to right, as the records came
    assert sink.table()["total"].to_pylist() == [expected]
    assert sink.table()["avg"].to_pylist() == [expected / len(values)]


def test_a_null_group_key_is_a_group_of_its_own() -> None:
    events = [
        {"user": None, "amount": 2, "ts": _at(1)},
        {"user": None, "amount": 3, "ts": _at(2)},
        {"user": "a", "amount": 5, "ts": _at(3)},
        {"user": "a", "amount": 0, "ts": _at(20)},
    ]
    sink, _ = _run(_window_topology(), events, batch=2)
    rows = {r["user"]: (r["n"], r["total"]) for r in sink.table().to_pylist()}
    assert rows == {None: (2, 5), "a": (1, 5)}
