"""`stream-etl preview` against the real broker: shows every step, commits nothing, moves no offsets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import confluent_kafka as ck
import orjson
import pyarrow as pa
import pytest

from connectors.kafka.admin import produce
from stream_etl.context import RunContext
from stream_etl.loader import load_topology
from stream_etl.preview import preview
from stream_etl.records import LINEAGE
from stream_etl.samples import click, malformed, order, orders, reading
from stream_etl.testing import ListSource
from tests.e2e.workers import ORDERS, ROOT, assert_same_orders, read_table, run_worker
from tests.services import Services

pytestmark = pytest.mark.timeout(300)


def _preview(services: Services, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **services.environment(), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "stream_etl", "preview", ORDERS, *args]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def _committed(services: Services, group: str, topic: str, partitions: int) -> list[int]:
    consumer = ck.Consumer({"bootstrap.servers": services.kafka_bootstrap, "group.id": group})
    try:
        found = consumer.committed([ck.TopicPartition(topic, p) for p in range(partitions)], timeout=30)
    finally:
        consumer.close()
    return [tp.offset for tp in found]


def test_preview_prints_each_step_and_a_following_run_still_reads_everything(
    services: Services, topic: Callable[..., str], table_uri: str, unique: str, tmp_path: Path
) -> None:
    name = topic(partitions=2)
    values = list(orders(40))
    values[3] = malformed(3)
    produce(services.kafka_bootstrap, name, values)
    args = ["--arg", f"topic={name}", "--arg", f"table={table_uri}", "--app-id", unique]

    # More than the topic holds: preview stops once every partition is read to its end.
    result = _preview(services, *args, "--limit", "50", "--json")

    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    assert found["records"] == 40
    nodes = {n["name"]: n for n in found["nodes"]}
    assert list(nodes) == ["decode", "valid_amount", "amount_cents", "project", "table"]
    assert [f["name"] for f in nodes["project"]["schema"]] == ["id", "user", "amount_cents", "country", "ts", "tags"]
    assert {f["name"]: f["type"] for f in nodes["project"]["schema"]}["amount_cents"] == "int64"
    assert len(nodes["project"]["head"]) == 5
    valid = [i for i in range(40) if i != 3 and order(i)["amount"] >= 0]
    assert nodes["decode"]["rows"] == 39
    assert nodes["table"]["rows"] == len(valid) < 39  # some sample orders have negative amounts
    assert [d["step"] for d in found["dead_letters"]] == ["decode"]
    assert found["dead_letters"][0]["raw"] == malformed(3).decode()
    assert nodes["decode"]["dead_letters"][0]["error_class"] == "DecodeError"

    text = _preview(services, *args, "--limit", "5")
    assert text.returncode == 0, text.stderr
    assert "valid_amount" in text.stdout and "amount_cents: int64" in text.stdout and "nothing committed" in text.stdout

    # Nothing moved: no table, no group offsets (the job's group or the preview's), and a run reads it all.
    assert read_table(table_uri, services) is None
    assert _committed(services, unique, name, 2) == [ck.OFFSET_INVALID] * 2
    assert _committed(services, f"{unique}-preview", name, 2) == [ck.OFFSET_INVALID] * 2
    run_worker(services, app_id=unique, args={"topic": name, "table": table_uri}, log=tmp_path / "run.log")
    assert_same_orders(read_table(table_uri, services), [i for i in range(40) if i != 3])


def test_preview_of_an_empty_topic_says_no_records_arrived(services: Services, topic: Callable[..., str]) -> None:
    name = topic(partitions=1)

    result = _preview(services, "--arg", f"topic={name}", "--limit", "5", "--timeout", "2")

    assert result.returncode == 0, result.stderr
    assert "no records arrived within 2s" in result.stderr


@pytest.mark.parametrize("module", ["iot_windows", "clickstream", "orders_routed"])
def test_preview_runs_stateful_and_branching_topologies_without_a_broker(module: str) -> None:
    samples = {"iot_windows": reading, "clickstream": click, "orders_routed": order}
    topology = load_topology(str(ROOT / "topologies" / f"{module}.py"))
    records = [orjson.dumps(samples[module](i)) for i in range(300)] + [b"not json"]
    local = topology.with_connectors(source=ListSource(records, partitions=2))

    result = preview(local, RunContext(app_id="preview-test"), limit=301, timeout_s=30)

    assert result.records == 301
    assert [n.name for n in result.nodes] == ["decode", *(n.name for n in topology.nodes if n.kind != "source")]
    assert result.dead_letters is not None and b"not json" in result.dead_letters["raw"].to_pylist()
    sinks = [n for n in result.nodes if n.kind == "sink"]
    assert sinks and all(n.output is None or LINEAGE in n.output.column_names for n in sinks)
    assert any(n.output is not None and n.output.num_rows for n in result.nodes if n.kind == "step")


def test_check_sinks_fits_rows_to_the_table_under_its_policy_and_writes_nothing(
    services: Services, table_uri: str
) -> None:
    from deltalake import DeltaTable, write_deltalake

    from connectors.delta import DeltaSink
    from stream_etl import Topology

    write_deltalake(table_uri, pa.table({"id": pa.array([1], pa.int64())}), storage_options=services.storage_options())
    topology = Topology("checked")
    topology.source(ListSource([])).sink(DeltaSink(table_uri, schema_mode="strict"), name="events")
    records = [b'{"id": 2}', b'{"id": 3, "coupon": "X"}', b'{"id": 4}']
    local = topology.with_connectors(source=ListSource(records))
    ctx = RunContext(app_id="checked", settings=services.settings())

    unchecked = preview(local, ctx, limit=3, timeout_s=30)
    checked = preview(local, ctx, limit=3, timeout_s=30, check_sinks=True)

    assert unchecked.nodes[-1].output is not None and unchecked.nodes[-1].output.num_rows == 3
    sink = checked.nodes[-1]
    assert sink.output is not None and sink.output.column("id").to_pylist() == [2, 4]
    assert [(f.row, f.step) for f in sink.failures] == [(1, "sink:events")]
    assert checked.dead_letters is not None and checked.dead_letters["step"].to_pylist() == ["sink:events"]
    assert DeltaTable(table_uri, storage_options=services.storage_options()).version() == 0


def test_check_sinks_leaves_sinks_that_may_write_when_opened_unchecked() -> None:
    from stream_etl import Topology
    from stream_etl.testing import MemorySink

    topology = Topology("unchecked")
    topology.source(ListSource([b'{"id": 1}'])).sink(MemorySink("out"))

    result = preview(topology, RunContext(app_id="unchecked"), limit=1, timeout_s=30, check_sinks=True)

    assert result.nodes[-1].description.endswith("(not checked: opening this sink may write to it)")
    assert result.nodes[-1].output is not None and result.nodes[-1].output.num_rows == 1
