"""Kafka -> topology -> Postgres upsert, with workers SIGKILLed mid-stream: the table ends equal
to the expected final state, row by row (every update applied once, in order, none lost)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from connectors.kafka.admin import produce
from stream_etl.samples import order
from tests.e2e.workers import ROOT, kill_after_commits, run_worker, start_worker, wait_for
from tests.services import Services, drop_postgres_table

pytestmark = pytest.mark.timeout(600)

DSN = "postgresql://postgres@127.0.0.1:5432/test"
TOPOLOGY = str(ROOT / "topologies" / "orders_postgres.py")


def update(i: int, keys: int) -> dict[str, Any]:
    """The ``i``-th update: sample order ``i`` for order id ``i % keys``."""
    return {**order(i), "id": i % keys}


def expected_state(total: int, keys: int) -> list[tuple[Any, ...]]:
    """Per id, the last update that passes the topology's filter (amount >= 0), sorted by id."""
    last: dict[int, dict[str, Any]] = {}
    for i in range(total):
        row = update(i, keys)
        if row["amount"] >= 0:
            last[row["id"]] = row
    return [
        (r["id"], r["user"], round(r["amount"] * 100), r["country"], r["ts"], r["tags"])
        for _, r in sorted(last.items())
    ]


def _rows(table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(DSN) as conn:
        return conn.execute(f'SELECT id, "user", amount_cents, country, ts, tags FROM "{table}" ORDER BY id').fetchall()


def _stored(app_id: str) -> int:
    """Records committed so far (sum of stored offsets + 1)."""
    with psycopg.connect(DSN) as conn:
        found = conn.execute(
            "SELECT coalesce(sum(position + 1), 0) FROM stream_etl_positions WHERE app_id = %s", (app_id,)
        ).fetchone()
    return int(found[0]) if found else 0


@pytest.fixture
def pg_table(unique: str) -> Any:
    name = "e2e_" + unique.replace("-", "_")[:40]
    drop_postgres_table(DSN, name)  # also creates the positions table the helpers below read
    yield name
    drop_postgres_table(DSN, name)


@pytest.mark.slow
def test_sigkill_restarts_leave_the_upserted_table_equal_to_the_final_state(
    services: Services, topic: Callable[..., str], unique: str, pg_table: str, tmp_path: Path
) -> None:
    total, keys = 40_000, 3_000
    name = topic(partitions=4)
    produce(
        services.kafka_bootstrap,
        name,
        (orjson.dumps(update(i, keys)) for i in range(total)),
        keys=(str(i % keys).encode() for i in range(total)),  # one key, one partition: updates stay in order
    )
    args = {"topic": name, "table": pg_table, "dsn": DSN, "batch_records": "1000", "assignment": "direct"}
    stored_at_kill: list[int] = []
    kill_after_commits(
        services,
        app_id=unique,
        args=args,
        topology=TOPOLOGY,
        logs=tmp_path,
        commits=lambda: _stored(unique),
        seed=4,
        on_kill=lambda: stored_at_kill.append(_stored(unique)),
    )

    assert len(stored_at_kill) >= 2, f"only {len(stored_at_kill)} kills landed mid-stream"
    assert stored_at_kill == sorted(stored_at_kill) and stored_at_kill[0] < total
    summary = run_worker(services, app_id=unique, args=args, log=tmp_path / "final.log", topology=TOPOLOGY)

    assert _stored(unique) == total
    expected = expected_state(total, keys)
    got = _rows(pg_table)
    assert len(got) == len(expected)
    mismatched = [(g, e) for g, e in zip(got, expected, strict=True) if g != e]
    assert not mismatched, f"{len(mismatched)} rows differ, e.g. {mismatched[:3]}"
    assert summary["sinks"][pg_table]["rows"] == keys


def _writers(app_id: str) -> set[int]:
    """Process ids of the workers that stored positions (``writer`` is ``host:pid``)."""
    with psycopg.connect(DSN) as conn:
        rows = conn.execute("SELECT DISTINCT writer FROM stream_etl_positions WHERE app_id = %s", (app_id,)).fetchall()
    return {int(w.rsplit(":", 1)[1]) for (w,) in rows if w}


@pytest.mark.slow
def test_two_workers_share_partitions_and_the_survivor_takes_over_after_a_sigkill(
    services: Services, topic: Callable[..., str], unique: str, pg_table: str, tmp_path: Path
) -> None:
    """Consumer-group rebalances between two workers, one SIGKILLed: positions fence the
    stale writer, and the upserted table still ends equal to the final state."""
    keys, first, more = 2_000, 20_000, 20_000
    name = topic(partitions=4)

    def send(start: int, count: int) -> None:
        produce(
            services.kafka_bootstrap,
            name,
            (orjson.dumps(update(i, keys)) for i in range(start, start + count)),
            keys=(str(i % keys).encode() for i in range(start, start + count)),
        )

    args = {"topic": name, "table": pg_table, "dsn": DSN, "batch_records": "2000", "assignment": "group"}
    send(0, first)
    a = start_worker(services, app_id=unique, args=args, log=tmp_path / "a.log", topology=TOPOLOGY)
    b = start_worker(services, app_id=unique, args=args, log=tmp_path / "b.log", topology=TOPOLOGY)
    try:
        wait_for(lambda: _writers(unique) >= {a.pid, b.pid}, 120, "both workers to commit")
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=60)
        send(first, more)
        wait_for(lambda: _stored(unique) >= first + more, 180, "the survivor to commit everything")
    finally:
        for process in (a, b):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
    assert b.returncode == 0, (tmp_path / "b.log").read_text()[-3000:]
    assert _stored(unique) == first + more
    assert _rows(pg_table) == expected_state(first + more, keys)
    assert "revoked" in (tmp_path / "b.log").read_text()  # the group did rebalance
