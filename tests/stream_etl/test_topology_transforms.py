"""The Glue-style Stream methods, run through the real run loop with in-memory connectors."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest

from stream_etl import JsonFormat, Topology
from stream_etl.context import RunContext
from stream_etl.errors import ConfigurationError
from stream_etl.runloop import RunLoop
from stream_etl.testing import ListSource, MemorySink, run_topology

ORDERS = [
    {"id": 1, "customer": {"name": "Zoë", "city": "Köln"}, "items": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}]},
    {"id": 2, "customer": {"name": "李", "city": None}, "items": []},
    b"not json",
    {"id": 3, "customer": None, "items": [{"sku": "c", "qty": 5}]},
]


def test_relationalize_routes_parent_and_children_to_their_own_sinks() -> None:
    topology = Topology("orders")
    stream = topology.source(ListSource([]))
    parent, items = stream.relationalize("items", key="id", prefix="item_", name="split")
    parent.flatten(name="flat").sink(MemorySink("orders"))
    items.sink(MemorySink("order_items"))

    result = run_topology(topology, ORDERS)

    assert result.output("orders").to_pylist() == [
        {"id": 1, "customer_name": "Zoë", "customer_city": "Köln"},
        {"id": 2, "customer_name": "李", "customer_city": None},
        {"id": 3, "customer_name": None, "customer_city": None},
    ]
    children = result.output("order_items")
    assert children.schema == pa.schema(
        [("id", pa.int64()), ("index", pa.int64()), ("item_sku", pa.string()), ("item_qty", pa.int64())]
    )
    assert children.to_pylist() == [
        {"id": 1, "index": 0, "item_sku": "a", "item_qty": 2},
        {"id": 1, "index": 1, "item_sku": "b", "item_qty": 1},
        {"id": 3, "index": 0, "item_sku": "c", "item_qty": 5},
    ]
    assert [n.name for n in topology.nodes if n.kind == "step"] == ["split", "split.children", "flat"]
    stats = result.summary.stats
    assert (stats["records_in"], stats["written"], stats["filtered"], stats["dead_lettered"]) == (4, 3, 0, 1)


def test_unbox_failures_are_dead_lettered_with_the_step_name_through_the_run_loop() -> None:
    topology = Topology("events")
    (
        topology.source(ListSource([]), format=JsonFormat(pa.schema([("id", pa.int64()), ("payload", pa.string())])))
        .unbox("payload", schema=pa.schema([("n", pa.int64())]), name="parse_payload")
        .flatten(name="flat")
        .sink(MemorySink("events"))
    )
    records = [{"id": 1, "payload": '{"n": 5}'}, {"id": 2, "payload": "{oops"}, {"id": 3, "payload": None}]

    result = run_topology(topology, records)

    assert result.output().to_pylist() == [{"id": 1, "payload_n": 5}, {"id": 3, "payload_n": None}]
    dead = result.dead_letters
    assert dead["step"].to_pylist() == ["parse_payload"]
    assert dead["raw"].to_pylist() == [b'{"id":2,"payload":"{oops"}']


def test_every_glue_method_chains_into_one_topology() -> None:
    topology = Topology("everything")
    (
        topology.source(ListSource([]))
        .apply_mapping(
            [
                ("id", "int64", "id", "int64"),
                ("user.email", "string", "email", "string"),
                ("amount", "string", "amount", "double"),
                ("tags", "string", "tags", "string"),
                ("ts", "string", "ts", "timestamptz"),
            ],
            name="mapping",
        )
        .rename_field("amount", "total", name="rename")
        .fill_missing_values({"total": 0.0}, name="fill")
        .sql("SELECT *, total * 2 AS doubled FROM batch WHERE id <> 99", name="sql")
        .unbox("tags", name="unbox")
        .flatten(name="flatten")
        .resolve_choice({"tags_n": "cast:string"}, name="choice")
        .redact("email", pattern="@.*", replacement="@…", name="redact")
        .mask("email", keep_last=2, name="mask")
        .hash("tags_n", salt="s", name="hash")
        .date_partitions("ts", name="partitions")
        .ingestion_time(name="ingested")
        .drop_null_fields(name="nulls")
        .map(lambda r: {**r, "id": r["id"] + 1}, name="inc")
        .drop_fields("ingested_at", name="drop")
        .select_fields("id", "email", "total", "doubled", "tags_n", "year", name="project")
        .sink(MemorySink("out"))
    )
    records = [
        {"id": 1, "user": {"email": "ann@x.org"}, "amount": "2.5", "tags": '{"n": 7}', "ts": "2026-05-06T07:00:00Z"},
        {"id": 99, "user": None, "amount": None, "tags": '{"n": 1}', "ts": "2026-05-06T07:00:00Z"},
        {"id": 2, "user": {"email": "bø@y.de"}, "amount": "x", "tags": '{"n": 2}', "ts": "2026-05-06T07:00:00Z"},
    ]

    result = run_topology(topology, records)

    assert result.output().to_pylist() == [
        {
            "id": 2,
            "email": "***@…",
            "total": 2.5,
            "doubled": 5.0,
            "tags_n": hashlib.sha256(b"s7").hexdigest(),
            "year": 2026,
        }
    ]
    assert result.dead_letters["step"].to_pylist() == ["mapping"]
    stats = result.summary.stats
    assert (stats["written"], stats["filtered"], stats["dead_lettered"]) == (1, 1, 1)


def test_relationalize_needs_a_key() -> None:
    stream = Topology("t").source(ListSource([]))
    with pytest.raises(ConfigurationError, match="needs key"):
        stream.relationalize("items", key=[])


def test_relationalize_keyed_by_the_source_position_when_records_have_no_id() -> None:
    records = [{"items": [{"sku": "a"}, {"sku": "b"}]}, {"items": [{"sku": "c"}]}, {"items": None}]
    topology = Topology("positions")
    stream = topology.source(ListSource(records, partitions=2, metadata=("partition", "offset")))
    parent, items = stream.relationalize("items", key=["_partition", "_offset"])
    parent.sink(MemorySink("parents"))
    child_sink = MemorySink("items")
    items.sink(child_sink)

    RunLoop(topology, RunContext(app_id="positions", mode="until_caught_up")).run()

    rows = sorted(child_sink.table().to_pylist(), key=lambda r: (r["_partition"], r["_offset"], r["index"]))
    assert rows == [
        {"_partition": 0, "_offset": 0, "index": 0, "sku": "a"},
        {"_partition": 0, "_offset": 0, "index": 1, "sku": "b"},
        {"_partition": 1, "_offset": 0, "index": 0, "sku": "c"},
    ]
