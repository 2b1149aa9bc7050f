"""Schema evolution against the real broker and S3, with worker processes and a SIGKILL mid-stream.

A producer adds a field (or changes a field's type) while a worker runs: under ``merge``
the field becomes a column (earlier rows null), under ``strict`` its rows are dead-lettered
with the sink's step name; with a rescue column the offending values are kept as JSON.
Every record ends up exactly once in the table or in the dead letters.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest

from connectors.kafka.admin import produce
from stream_etl.formats.avro import confluent_frame, encode
from tests.e2e.workers import ROOT, read_table, run_worker, start_worker, table_version
from tests.services import Services

pytestmark = pytest.mark.timeout(600)

EVOLVING = str(ROOT / "topologies" / "evolving_events.py")
AVRO_EVENTS = str(ROOT / "topologies" / "avro_events.py")
V1 = {
    "type": "record",
    "name": "Event",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "user", "type": "string"},
        {"name": "amount", "type": "double"},
    ],
}
V2 = {**V1, "fields": [*V1["fields"], {"name": "coupon", "type": ["null", "string"], "default": None}]}


def _events(start: int, stop: int, **extra: Callable[[int], Any]) -> Iterator[bytes]:
    for i in range(start, stop):
        record: dict[str, Any] = {"id": i, "user": f"ü{i % 7}", "amount": float(i % 100)}
        record.update({key: make(i) for key, make in extra.items()})
        yield orjson.dumps(record)


def _wait_for(condition: Callable[[], bool], timeout: float, log: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"worker exited {process.returncode}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


def _rows(uri: str, services: Services) -> int:
    table = read_table(uri, services)
    return table.num_rows if table is not None else 0


def _stream_in_two_phases(
    services: Services,
    name: str,
    table_uri: str,
    unique: str,
    tmp_path: Path,
    args: dict[str, str],
    second: Callable[[], Iterator[bytes]],
    *,
    first: Callable[[], Iterator[bytes]] = lambda: _events(0, 2000),
    topology: str = EVOLVING,
    first_rows: int = 2000,
) -> None:
    """Phase 1 is committed by a running worker; phase 2 is produced while it runs, the worker
    is SIGKILLed once phase 2 starts landing, and a fresh worker finishes the stream."""
    produce(services.kafka_bootstrap, name, first())
    log = tmp_path / "first.log"
    worker = start_worker(services, app_id=unique, args=args, log=log, topology=topology)
    try:
        _wait_for(lambda: _rows(table_uri, services) >= first_rows, 180, log, worker)
        version = table_version(table_uri, services)
        produce(services.kafka_bootstrap, name, second())
        dead_uri = f"{table_uri}_dead_letters"
        _wait_for(
            lambda: table_version(table_uri, services) > version + 1 or _rows(dead_uri, services) > 0, 180, log, worker
        )
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    summary = run_worker(services, app_id=unique, args=args, log=tmp_path / "final.log", topology=topology)
    stats = summary["stats"]
    assert stats["records_in"] == stats["written"] + stats["filtered"] + stats["dead_lettered"]


def _dead_ids(table_uri: str, services: Services) -> tuple[list[int], pa.Table | None]:
    dead = read_table(f"{table_uri}_dead_letters", services)
    if dead is None:
        return [], None
    return sorted(orjson.loads(raw)["id"] for raw in dead["raw"].to_pylist()), dead


@pytest.mark.parametrize("mode", ["merge", "strict"])
def test_a_field_added_mid_stream_becomes_a_column_or_is_dead_lettered(
    services: Services, topic: Callable[..., str], table_uri: str, unique: str, tmp_path: Path, mode: str
) -> None:
    name = topic(partitions=2)
    args = {"topic": name, "table": table_uri, "schema_mode": mode, "batch_records": "500"}

    _stream_in_two_phases(
        services, name, table_uri, unique, tmp_path, args, lambda: _events(2000, 5000, coupon=lambda i: f"C{i}")
    )

    table = read_table(table_uri, services)
    assert table is not None
    rows = table.sort_by("id").to_pylist()
    dead_ids, dead = _dead_ids(table_uri, services)
    if mode == "merge":
        assert [r["id"] for r in rows] == list(range(5000))
        assert all(r["coupon"] is None for r in rows[:2000])
        assert [r["coupon"] for r in rows[2000:]] == [f"C{i}" for i in range(2000, 5000)]
        assert dead_ids == []
    else:
        assert "coupon" not in table.column_names
        assert [r["id"] for r in rows] == list(range(2000))
        assert dead_ids == list(range(2000, 5000))  # each once, despite the SIGKILL
        assert dead is not None
        assert set(dead["step"].to_pylist()) == {"sink:table"}
        assert "field 'coupon' is not a column" in dead["error"][0].as_py()


@pytest.mark.parametrize("policy", ["strict", "rescue"])
def test_a_changed_field_type_is_cast_when_lossless_else_dead_lettered_or_rescued(
    services: Services, topic: Callable[..., str], table_uri: str, unique: str, tmp_path: Path, policy: str
) -> None:
    name = topic(partitions=2)
    args = {"topic": name, "table": table_uri, "schema_mode": "strict", "batch_records": "500"}
    if policy == "rescue":
        args["rescue_column"] = "_rescued"

    # The producer starts sending amount as text: "12.5" converts to the table's double, "n/a" does not.
    _stream_in_two_phases(
        services,
        name,
        table_uri,
        unique,
        tmp_path,
        args,
        lambda: _events(2000, 4000, amount=lambda i: "12.5" if i % 2 == 0 else "n/a"),
    )

    table = read_table(table_uri, services)
    assert table is not None
    assert table.schema.field("amount").type == pa.float64()
    rows = {r["id"]: r for r in table.to_pylist()}
    dead_ids, dead = _dead_ids(table_uri, services)
    assert all(rows[i]["amount"] == 12.5 for i in range(2000, 4000, 2))
    if policy == "strict":
        assert sorted(rows) == list(range(2000)) + list(range(2000, 4000, 2))
        assert dead_ids == list(range(2001, 4000, 2))
        assert dead is not None
        assert set(dead["step"].to_pylist()) == {"sink:table"}
        assert "does not fit column 'amount' (double)" in dead["error"][0].as_py()
    else:
        assert sorted(rows) == list(range(4000))
        assert dead_ids == []
        assert all(
            rows[i]["amount"] is None and rows[i]["_rescued"] == '{"amount":"n/a"}' for i in range(2001, 4000, 2)
        )
        assert all(rows[i]["_rescued"] is None for i in range(2000))


def test_confluent_avro_producer_moving_to_a_newer_schema_mid_stream(
    services: Services, topic: Callable[..., str], table_uri: str, unique: str, tmp_path: Path
) -> None:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "1.avsc").write_text(json.dumps(V1))
    (schemas / "2.avsc").write_text(json.dumps(V2))
    name = topic(partitions=2)
    args = {"topic": name, "table": table_uri, "schemas": str(schemas), "batch_records": "500"}

    def first() -> Iterator[bytes]:
        for i in range(2000):
            if i == 700:
                yield b"\x01not avro"  # bad magic byte
            elif i == 1400:
                yield confluent_frame(9, encode(V1, {"id": i, "user": "x", "amount": 1.0}))  # unknown id
            else:
                yield confluent_frame(1, encode(V1, {"id": i, "user": f"ü{i % 7}", "amount": float(i % 100)}))

    def second() -> Iterator[bytes]:
        for i in range(2000, 5000):
            record = {"id": i, "user": f"ü{i % 7}", "amount": float(i % 100), "coupon": f"C{i}"}
            yield confluent_frame(2, encode(V2, record))

    _stream_in_two_phases(
        services, name, table_uri, unique, tmp_path, args, second, first=first, topology=AVRO_EVENTS, first_rows=1998
    )

    table = read_table(table_uri, services)
    assert table is not None
    rows = table.sort_by("id").to_pylist()
    assert [r["id"] for r in rows] == [i for i in range(5000) if i not in (700, 1400)]
    assert all(r["coupon"] is None for r in rows if r["id"] < 2000)
    assert all(r["coupon"] == f"C{r['id']}" for r in rows if r["id"] >= 2000)
    assert rows[1]["user"] == "ü1" and rows[1]["amount"] == 1.0
    dead = read_table(f"{table_uri}_dead_letters", services)
    assert dead is not None
    assert sorted(dead["error"].to_pylist()) == [
        "bad magic byte 1; the Confluent wire format starts with 0",
        f"unknown schema id 9 (DirectoryResolver({str(schemas)!r}))",
    ]
    assert set(dead["step"].to_pylist()) == {"decode"}
