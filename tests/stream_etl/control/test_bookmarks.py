"""Bookmarks commands against real Kafka and S3: after a run, show lists the stored offsets;
a rewind (to offsets, to a time, by N) makes the next run read exactly the records after it
again; a reset makes it start over per the source's start setting."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from connectors.kafka.admin import produce
from stream_etl.control.bookmarks import reset, rewind, show
from stream_etl.errors import ConfigurationError
from stream_etl.samples import orders
from tests.e2e.workers import ROOT, produce_around_a_cut, read_table, run_worker
from tests.services import Services

pytestmark = pytest.mark.timeout(300)


def _run(services: Services, app_id: str, args: dict[str, str], log: Path) -> int:
    """Run the orders topology until caught up; returns how many records it read."""
    return int(run_worker(services, app_id=app_id, args=args, log=log)["stats"]["records_in"])


def test_show_then_rewind_to_offsets_rereads_exactly_the_records_after_them(
    services: Services, topic: Callable[..., str], table_uri: str, unique: str, tmp_path: Path
) -> None:
    name = topic(partitions=2)
    total = 400
    produce(services.kafka_bootstrap, name, orders(total), keys=(str(i).encode() for i in range(total)))
    args = {"topic": name, "table": table_uri, "batch_records": "100", "assignment": "direct"}
    assert _run(services, unique, args, tmp_path / "first.log") == total

    rows = show(table_uri, services.settings(), app_id=unique)
    assert [r["partition"] for r in rows] == [f"{name}-0", f"{name}-1"]
    assert sum(r["end_offset"] for r in rows) == total
    for r in rows:  # caught up: the next offset is the partition's end
        assert (r["next_offset"], r["lag"], r["stored_by"]) == (r["end_offset"], 0, "sink")
        assert r["last_written"] == r["next_offset"] - 1 and r["version"] is not None and r["committed_at"]
    ends = {r["kafka_partition"]: r["end_offset"] for r in rows}

    moved = rewind(table_uri, services.settings(), unique, to_offsets={f"{name}:0": ends[0] - 30, f"{name}:1": 5})
    assert moved.changes == {f"{name}-0": (ends[0], ends[0] - 30), f"{name}-1": (ends[1], 5)}
    after = {r["kafka_partition"]: r for r in show(table_uri, services.settings(), app_id=unique)}
    assert (after[0]["next_offset"], after[0]["lag"], after[0]["stored_by"]) == (ends[0] - 30, 30, "rewind")
    assert after[0]["version"] == moved.version

    rows_before = read_table(table_uri, services).num_rows  # type: ignore[union-attr]
    again = _run(services, unique, args, tmp_path / "second.log")
    assert again == 30 + ends[1] - 5  # exactly the records at and after the rewound offsets
    written = read_table(table_uri, services).num_rows - rows_before  # type: ignore[union-attr]
    assert 0 < written <= again  # the orders topology filters out negative amounts

    # The command line prints the same, as JSON.
    env = {**services.environment(), "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "stream_etl", "bookmarks", "show", table_uri, "--app-id", unique, "--json"]
    printed = json.loads(subprocess.run(command, env=env, capture_output=True, check=True, cwd=ROOT).stdout)
    assert [r["next_offset"] for r in printed] == [ends[0], ends[1]]


def test_rewind_to_a_timestamp_or_by_n_and_reset(
    services: Services, topic: Callable[..., str], table_uri: str, unique: str, tmp_path: Path
) -> None:
    name = topic(partitions=1)
    middle = produce_around_a_cut(services, name, 100, 60)
    args = {"topic": name, "table": table_uri, "batch_records": "50", "assignment": "direct"}
    assert _run(services, unique, args, tmp_path / "first.log") == 160

    moved = rewind(table_uri, services.settings(), unique, to_timestamp=middle)
    assert moved.changes == {f"{name}-0": (160, 100)}
    assert _run(services, unique, args, tmp_path / "time.log") == 60

    rewind(table_uri, services.settings(), unique, by=7)
    assert _run(services, unique, args, tmp_path / "by.log") == 7

    moved = reset(table_uri, services.settings(), unique)
    assert moved.changes == {f"{name}-0": (160, None)}
    [row] = show(table_uri, services.settings(), app_id=unique)
    assert (row["next_offset"], row["stored_by"], row["lag"]) == (None, "reset", None)
    assert _run(services, unique, args, tmp_path / "reset.log") == 160  # start_from=earliest: all again
    [row] = show(table_uri, services.settings(), app_id=unique)
    assert (row["next_offset"], row["stored_by"]) == (160, "sink")

    with pytest.raises(ConfigurationError, match="exactly one"):
        rewind(table_uri, services.settings(), unique, by=1, to_timestamp=middle)
    with pytest.raises(ConfigurationError, match="with its zone"):
        rewind(table_uri, services.settings(), unique, to_timestamp=datetime(2026, 1, 1))  # noqa: DTZ001


def test_a_jobs_bookmarks_through_the_api(
    services: Services, topic: Callable[..., str], table_uri: str, unique: str, tmp_path: Path
) -> None:
    from cryptography.fernet import Fernet
    from fastapi.testclient import TestClient

    from stream_etl.control.api import create_app
    from stream_etl.control.connections import Connections
    from stream_etl.control.jobs import Jobs, parse_spec
    from stream_etl.control.secrets import SecretBox
    from stream_etl.control.store import Store
    from stream_etl.control.tokens import Tokens

    name = topic(partitions=1)
    produce(services.kafka_bootstrap, name, orders(50))
    args = {"topic": name, "table": table_uri, "assignment": "direct"}
    assert _run(services, unique, args, tmp_path / "first.log") == 50
    box = SecretBox(Fernet.generate_key())
    with Store.open(f"sqlite:///{tmp_path / 'control.db'}") as store:
        connections = Connections(store, box)
        connections.create("kafka", "kafka", {"bootstrap_servers": services.kafka_bootstrap})
        s3 = {"endpoint_url": services.s3_endpoint, "access_key_id": services.access_key}
        connections.create("lake", "s3", {**s3, "secret_access_key": services.secret_key})
        spec = {"name": "orders", "topology": "topologies/orders.py", "arguments": args, "app_id": unique}
        Jobs(store).create(parse_spec({**spec, "connections": ["kafka", "lake"]}))
        headers = {
            role: {"Authorization": f"Bearer {Tokens(store).create(role, role)[0]}"} for role in ("viewer", "operator")
        }
        with TestClient(create_app(store, box)) as client:
            [row] = client.get("/jobs/orders/bookmarks", headers=headers["viewer"]).json()
            assert (row["next_offset"], row["end_offset"], row["lag"]) == (50, 50, 0)
            rewind_by = {"by": 10}
            assert (
                client.post("/jobs/orders/bookmarks/rewind", json=rewind_by, headers=headers["viewer"]).status_code
                == 403
            )
            moved = client.post("/jobs/orders/bookmarks/rewind", json=rewind_by, headers=headers["operator"]).json()
            assert moved["changes"] == {f"{name}-0": {"from": 50, "to": 40}}
            Jobs(store).start("orders")  # an active run: moving its bookmarks is refused
            refused = client.post("/jobs/orders/bookmarks/reset", json={}, headers=headers["operator"])
            assert refused.status_code == 409 and "stop it" in refused.json()["detail"]
