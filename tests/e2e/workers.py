"""Worker processes and table checks shared by the end-to-end tests."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from stream_etl.samples import order, orders
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
        process.wait()
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


def wait_for(condition: Callable[[], bool], timeout: float, what: str | Callable[[], str]) -> None:
    """Poll ``condition`` until it holds; ``what`` (or what it returns at the timeout) names it."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(0.2)


def produce_around_a_cut(services: Services, topic: str, before: int, after: int) -> datetime:
    """Produce sample orders ``0..before-1``, then ``before..before+after-1`` over a second
    later; returns a time between the two (for start-from and rewind-to timestamps)."""
    from connectors.kafka.admin import produce

    produce(services.kafka_bootstrap, topic, orders(before))
    time.sleep(1.1)
    cut = datetime.now(UTC)
    time.sleep(0.1)
    produce(services.kafka_bootstrap, topic, orders(after, start=before))
    return cut


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


def assert_positions_only_advance(uri: str, services: Services, app_id: str) -> int:
    """Every commit of ``app_id`` stored positions, and each partition's position only ever
    grew from one commit to the next: no commit repeated or undid another. Returns the
    number of commits checked."""
    history = DeltaTable(uri, storage_options=services.storage_options()).history()
    last: dict[str, int] = {}
    commits = 0
    for entry in sorted(history, key=lambda h: int(h["version"])):
        if entry.get("stream_etl.app_id") != app_id:
            continue
        positions = json.loads(str(entry["stream_etl.positions"]))
        assert positions, f"version {entry['version']} stored no position"
        for partition, position in positions.items():
            assert position > last.get(partition, -1), (
                f"version {entry['version']} stored {partition} at {position}, after {last.get(partition)}"
            )
            last[partition] = position
        commits += 1
    return commits


def killed_at(
    services: Services,
    fault: str,
    *,
    app_id: str,
    args: dict[str, str],
    log: Path,
    topology: str = ORDERS,
    extra_env: dict[str, str] | None = None,
    timeout: float = 120,
) -> None:
    """Run an until-caught-up worker armed with ``STREAM_ETL_FAULT=fault``; fails unless the fault
    SIGKILLed it."""
    process = start_worker(
        services,
        app_id=app_id,
        args=args,
        log=log,
        topology=topology,
        until_caught_up=True,
        extra_env={**(extra_env or {}), "STREAM_ETL_FAULT": fault},
    )
    assert process.wait(timeout=timeout) == -signal.SIGKILL, (
        f"the fault {fault} did not fire:\n{log.read_text()[-2000:]}"
    )


def kill_after_commits(
    services: Services,
    *,
    app_id: str,
    args: dict[str, str],
    topology: str,
    logs: Path,
    commits: Callable[[], int],
    seed: int,
    max_kills: int = 4,
    on_kill: Callable[[], None] | None = None,
) -> int:
    """Start until-caught-up workers one after another and SIGKILL each a random moment (0-0.4 s)
    after ``commits()`` grows, up to ``max_kills`` times or until one finishes; returns the kills.
    ``on_kill`` runs after each kill."""
    rng = random.Random(seed)
    kills = 0
    for attempt in range(10):
        if kills >= max_kills:
            break
        log = logs / f"worker-{attempt}.log"
        before = commits()
        process = start_worker(services, app_id=app_id, args=args, log=log, topology=topology, until_caught_up=True)
        deadline = time.monotonic() + 120
        while commits() <= before and process.poll() is None:
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.4))
        if process.poll() is not None:
            assert process.returncode == 0, log.read_text()[-2000:]
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        if on_kill is not None:
            on_kill()
    return kills
