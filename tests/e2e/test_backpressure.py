"""Resource bounds: with a 1,000,000-record backlog and a slow sink, the worker pauses the source
instead of reading ahead, and its memory stays within the configured budget."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from connectors.kafka.admin import produce
from stream_etl.samples import orders
from tests.e2e.workers import ROOT, read_table, run_worker, start_worker, table_version
from tests.services import Services

SLOW = str(ROOT / "tests" / "e2e" / "slow_sink_topology.py")
MB = 1 << 20
BACKLOG = 1_000_000
#: The configured bound on raw bytes read and not yet committed. prefetch_batches=16 would
#: let ~16 batches (~35 MB of records) wait between the stages: the bound is what stops it.
IN_FLIGHT = 8 * MB
#: librdkafka's own prefetch, configured for the test: its queue, plus one fetch response
#: (counted compressed: lz4 JSON decompresses ~10x) by which librdkafka may overshoot it.
QUEUED_KBYTES, FETCH_MAX, COMPRESSION = 2048, 1 * MB, 10
ARGS = {
    "batch_records": "20000",
    "max_batch_bytes": str(4 * MB),
    "max_in_flight_bytes": str(IN_FLIGHT),
    "prefetch_batches": "16",
    "commit_delay_s": "1",  # the slow sink: ~20k records/s at most
}
#: What may come on top of the same worker's peak with a small backlog (docs/RELIABILITY.md):
#: the in-flight records as Python objects and Arrow copies, and librdkafka's queue.
ALLOWANCE = 4 * IN_FLIGHT + QUEUED_KBYTES * 1024 + COMPRESSION * FETCH_MAX

pytestmark = pytest.mark.timeout(900)


def _run_and_sample(
    services: Services, topic: str, app_id: str, log: Path, seconds: float
) -> tuple[int, dict[str, int]]:
    """Peak RSS of a worker over ``seconds`` after its first commit, then its run summary."""
    consumer = (
        f"{services.consumer_options},queued.max.messages.kbytes={QUEUED_KBYTES},"
        f"fetch.max.bytes={FETCH_MAX},max.partition.fetch.bytes={FETCH_MAX // 4}"
    ).strip(",")
    uri = f"s3://{services.bucket}/{app_id}/table"
    worker = start_worker(
        services,
        app_id=app_id,
        args={**ARGS, "topic": topic, "table": uri},
        log=log,
        topology=SLOW,
        extra_env={"STREAM_ETL_KAFKA_CONSUMER_OPTIONS": consumer},
    )
    try:
        process = psutil.Process(worker.pid)
        peak, deadline = 0, time.monotonic() + 120
        while table_version(uri, services) < 0:
            assert time.monotonic() < deadline and worker.poll() is None, log.read_text()[-3000:]
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.1)
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=120) == 0, log.read_text()[-3000:]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    stats: dict[str, int] = json.loads(log.with_suffix(".out").read_text())["stats"]
    return peak, stats


@pytest.mark.slow
def test_a_slow_sink_pauses_the_source_and_memory_stays_within_the_budget(
    services: Services, topic: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    small = topic(partitions=4, suffix="-small")
    produce(services.kafka_bootstrap, small, orders(100_000))
    base_peak, _ = _run_and_sample(services, small, f"{unique}-base", tmp_path / "base.log", 10)
    big = topic(partitions=4)
    produce(services.kafka_bootstrap, big, orders(BACKLOG))

    peak, stats = _run_and_sample(services, big, unique, tmp_path / "big.log", 20)

    print(f"peak RSS: {base_peak / MB:.0f} MB with 100k records, {peak / MB:.0f} MB with 1M; stats {stats}")
    assert stats["records_in"] < BACKLOG, "the slow sink kept up: nothing was tested"
    assert stats["source_pauses"] > 0, "the source was never paused"
    assert stats["records_in"] == stats["written"]
    assert peak <= base_peak + ALLOWANCE, (
        f"RSS grew {(peak - base_peak) / MB:.0f} MB over the small backlog's, allowed {ALLOWANCE / MB:.0f} MB"
    )


@pytest.mark.timeout(300)
def test_a_paused_source_still_catches_up_exactly_once(
    services: Services, topic: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    """Pausing and resuming partitions (and their end-of-partition events) loses and repeats nothing."""
    name = topic(partitions=4)
    total = 30_000
    produce(services.kafka_bootstrap, name, orders(total))
    uri = f"s3://{services.bucket}/{unique}/table"
    args = {
        "topic": name,
        "table": uri,
        "batch_records": "2000",
        "max_batch_bytes": str(256 * 1024),
        "max_in_flight_bytes": str(256 * 1024),
        "commit_delay_s": "0.2",
    }

    summary = run_worker(services, app_id=unique, args=args, log=tmp_path / "w.log", topology=SLOW)

    assert summary["stats"]["source_pauses"] > 0
    table = read_table(uri, services)
    assert table is not None
    assert sorted(table["id"].to_pylist()) == list(range(total))
