"""Outages: S3 stopped mid-stream and restarted, a broker connection dropped or stalled.

Each test starts its own services (tests.services.own_stack) so it can cut them
without disturbing the other tests.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from connectors.kafka.admin import ensure_topic, produce
from stream_etl.devstack import free_port
from stream_etl.samples import order, orders
from tests.e2e.proxy import TcpProxy
from tests.e2e.workers import (
    assert_positions_only_advance,
    assert_same_orders,
    read_table,
    run_worker,
    start_worker,
    table_version,
)
from tests.services import Services, own_stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _wait_for(condition: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


def _rows(uri: str, services: Services) -> int:
    try:
        table = read_table(uri, services)
    except OSError:  # S3 is down
        return -1
    return table.num_rows if table is not None else 0


def _stop(process: subprocess.Popen[bytes], log: Path) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    assert process.returncode == 0, f"worker exited {process.returncode}:\n{log.read_text()[-3000:]}"


def test_s3_down_for_30_s_mid_stream_the_worker_waits_and_lands_everything_once(tmp_path: Path) -> None:
    with own_stack(tmp_path / "stack") as (stack, services):
        name, table = "orders-s3-outage", f"s3://{services.bucket}/outage/orders"
        ensure_topic(services.kafka_bootstrap, name, partitions=4)
        produce(services.kafka_bootstrap, name, orders(60_000))
        # Direct: commits from the first batch on (in group mode the backlog read during the
        # join lands in one commit, and the rest can finish before the outage starts).
        args = {"topic": name, "table": table, "batch_records": "1500", "assignment": "direct"}
        log = tmp_path / "worker.log"
        worker = start_worker(services, app_id="outage", args=args, log=log, until_caught_up=True)
        try:
            _wait_for(lambda: table_version(table, services) >= 1, 120, "the first commits", log)
            stack.stop_service("s3")
            stopped = time.monotonic()
            while time.monotonic() - stopped < 30:
                assert worker.poll() is None, f"the worker gave up during the outage:\n{log.read_text()[-3000:]}"
                time.sleep(1)
            stack.start_service("s3")
            code = worker.wait(timeout=300)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        assert code == 0, log.read_text()[-3000:]
        text = log.read_text()
        assert "retrying in" in text, "the outage was never noticed: it did not hit the stream"
        assert_same_orders(read_table(table, services), range(60_000))
        assert assert_positions_only_advance(table, services, "outage") >= 2


def test_s3_down_past_the_retry_budget_stops_with_a_clear_message_and_a_restart_finishes(tmp_path: Path) -> None:
    with own_stack(tmp_path / "stack") as (stack, services):
        name, table = "orders-s3-budget", f"s3://{services.bucket}/budget/orders"
        ensure_topic(services.kafka_bootstrap, name, partitions=2)
        produce(services.kafka_bootstrap, name, orders(40_000))
        args = {"topic": name, "table": table, "batch_records": "1000"}
        log = tmp_path / "short.log"
        worker = start_worker(
            services,
            app_id="budget",
            args=args,
            log=log,
            until_caught_up=True,
            extra_env={"STREAM_ETL_SINK_RETRY_TIMEOUT_S": "4"},
        )
        try:
            _wait_for(lambda: table_version(table, services) >= 0, 120, "the first commit", log)
            stack.stop_service("s3")
            code = worker.wait(timeout=120)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        assert code == 1, log.read_text()[-3000:]
        text = log.read_text()
        assert "past the retry budget of 4s" in text and "STREAM_ETL_SINK_RETRY_TIMEOUT_S" in text, text[-3000:]

        stack.start_service("s3")
        run_worker(services, app_id="budget", args=args, log=tmp_path / "final.log")
        assert_same_orders(read_table(table, services), range(40_000))
        assert assert_positions_only_advance(table, services, "budget") >= 2


def test_broker_connections_dropped_and_stalled_the_worker_reconnects_exactly_once(
    services: Services, tmp_path: Path
) -> None:
    """Our own Tansu advertises the proxy's port, so every broker connection goes through it."""
    proxy_port = free_port()
    with own_stack(tmp_path / "stack", kafka_advertised_port=proxy_port) as (stack, own):
        with TcpProxy(proxy_port, int(own.kafka_bootstrap.rsplit(":", 1)[1])) as proxy:
            via_proxy = replace(services, kafka_bootstrap=f"127.0.0.1:{proxy_port}")
            name, table = "orders-net", f"s3://{services.bucket}/net-faults-{time.time_ns()}/orders"
            ensure_topic(via_proxy.kafka_bootstrap, name, partitions=4)
            produce(via_proxy.kafka_bootstrap, name, orders(30_000))
            args = {"topic": name, "table": table, "batch_records": "2000"}
            log = tmp_path / "worker.log"
            worker = start_worker(via_proxy, app_id="net", args=args, log=log)
            try:
                _wait_for(lambda: table_version(table, services) >= 0, 120, "the first commit", log)
                for _ in range(3):
                    proxy.drop_all()
                    time.sleep(2)
                produce(via_proxy.kafka_bootstrap, name, orders(30_000, start=30_000))
                proxy.stall(20)  # longer than the session timeout (6 s): the member is expired
                time.sleep(21)
                proxy.drop_all()
                produce(via_proxy.kafka_bootstrap, name, orders(30_000, start=60_000))
                expected = sum(1 for i in range(90_000) if order(i)["amount"] >= 0)
                _wait_for(lambda: _rows(table, services) >= expected, 300, "every record", log)
                time.sleep(3)  # let a duplicate, if any, land
                assert worker.poll() is None, log.read_text()[-3000:]
            finally:
                _stop(worker, log)
            assert proxy.drops == 4 and proxy.connections > 4
        assert_same_orders(read_table(table, services), range(90_000))
        assert assert_positions_only_advance(table, services, "net") >= 2
