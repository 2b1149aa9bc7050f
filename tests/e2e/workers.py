"""Worker processes and table checks shared by the end-to-end tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from stream_etl.samples import order
from tests.services import Services

ROOT = Path(__file__).resolve().parents[2]
ORDERS = str(ROOT / "topologies" / "orders.py")


def worker_command(topology: str, *, app_id: str, args: dict[str, str], until_caught_up: bool) -> list[str]:
    command = [sys.executable, "-m", "stream_etl", "run", topology, "--app-id", app_id, "--json"]
    for key, value in args.items():
        command += ["--arg", f"{key}={value}"]
    if until_caught_up:
        command.append("--until-caught-up")
    return command


def start_worker(
    services: Services,
    *,
    app_id: str,
    args: dict[str, str],
    log: Path,
    topology: str = ORDERS,
    until_caught_up: bool = False,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """A worker process; its log goes to ``log`` and its stdout (the summary) beside it."""
    env = {**os.environ, **services.environment(), "PYTHONPATH": str(ROOT), **(extra_env or {})}
    with log.open("ab") as errors, log.with_suffix(".out").open("wb") as output:
        return subprocess.Popen(
            worker_command(topology, app_id=app_id, args=args, until_caught_up=until_caught_up),
            env=env,
            cwd=ROOT,
            stdout=output,
            stderr=errors,
        )


def run_worker(
    services: Services,
    *,
    app_id: str,
    args: dict[str, str],
    log: Path,
    timeout: float = 180,
    topology: str = ORDERS,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run until caught up; returns the summary, or fails with the worker's log."""
    process = start_worker(
        services, app_id=app_id, args=args, log=log, until_caught_up=True, topology=topology, extra_env=extra_env
    )
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"worker did not finish in {timeout}s:\n{log.read_text()[-3000:]}") from None
    assert code == 0, f"worker exited {code}:\n{log.read_text()[-3000:]}"
    summary: dict[str, Any] = json.loads(log.with_suffix(".out").read_text())
    return summary


def client_env(kafka_client: str) -> dict[str, str]:
    """The environment that makes a worker read Kafka with ``kafka_client`` (confluent, aiokafka)."""
    return {"STREAM_ETL_KAFKA_CLIENT": kafka_client}


def read_table(uri: str, services: Services) -> pa.Table | None:
    try:
        table = DeltaTable(uri, storage_options=services.storage_options())
    except TableNotFoundError:
        return None
    return table.to_pyarrow_table()


def table_version(uri: str, services: Services) -> int:
    try:
        return DeltaTable(uri, storage_options=services.storage_options()).version()
    except TableNotFoundError:
        return -1


def expected_orders(ids: Iterable[int]) -> pa.Table:
    """What topologies/orders.py writes for sample orders ``ids`` (sorted by id)."""
    rows = []
    for i in ids:
        o = order(i)
        if o["amount"] >= 0:
            rows.append(
                {
                    "id": o["id"],
                    "user": o["user"],
                    "amount_cents": round(o["amount"] * 100),
                    "country": o["country"],
                    "ts": o["ts"],
                    "tags": o["tags"],
                }
            )
    return pa.Table.from_pylist(rows)


def assert_same_orders(actual: pa.Table | None, ids: Iterable[int]) -> None:
    """The table holds exactly the expected rows, each once, compared by content."""
    assert actual is not None, "the table was never created"
    expected = expected_orders(ids)
    got = actual.select(expected.column_names).sort_by("id")
    ids_got = got["id"].to_pylist()
    duplicates = len(ids_got) - len(set(ids_got))
    assert duplicates == 0, f"{duplicates} duplicate rows"
    missing = set(expected["id"].to_pylist()) - set(ids_got)
    assert not missing, f"{len(missing)} missing rows, e.g. {sorted(missing)[:10]}"
    assert got.num_rows == expected.num_rows
    for column in expected.column_names:
        assert got[column].to_pylist() == expected[column].to_pylist(), f"column {column} differs"
