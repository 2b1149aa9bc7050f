"""Scenario (c): freshness. A fixed 20,000 records/s for 60 s into a running worker with a
1 s trigger; how long from produce to visible in the Delta table, per record.

A record's produce time is its Kafka message timestamp (CreateTime, taken by the producer
client when it is handed the record; the producer lingers 5 ms at most). It becomes visible
when the Delta commit whose stored position first covers its offset lands: the commit's
timestamp in the Delta log. Latencies come from joining the two per partition (sorted
offsets against the commits' positions), for every record, so p99 is over all of them.

The worker is the orders topology in continuous mode (consumer group), started and given
a warm-up record per partition before the clock starts, so the figures measure the steady
stream, not the group join. It is stopped with SIGTERM once it has committed everything.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.scenarios import Context, Outcome

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = ROOT / "topologies" / "orders.py"
RATE, SECONDS, PARTITIONS = 20_000, 60, 4
GOAL_P99_S = 2.0


def freshness(context: Context) -> Outcome:
    from connectors.kafka.admin import ensure_topic, produce
    from stream_etl.samples import orders

    stack, args = context.stack, context.args
    rate = int(getattr(args, "freshness_rate", RATE))
    seconds = float(getattr(args, "freshness_seconds", SECONDS))
    topic, label = f"fresh-{context.run_id}", "freshness"
    table_uri = f"s3://{stack.bucket}/bench-{context.run_id}/{label}"
    ensure_topic(stack.kafka_bootstrap, topic, partitions=PARTITIONS)
    command = [
        sys.executable,
        "-m",
        "stream_etl",
        "run",
        str(TOPOLOGY),
        "--app-id",
        f"bench-{label}-{context.run_id}",
        "--arg",
        f"topic={topic}",
        "--arg",
        f"table={table_uri}",
        "--arg",
        "partition_by=",
    ]
    log_path = context.logs / f"{label}-{context.run_id}.err"
    problems: list[str] = []
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            command, env=stack.child_environment(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log
        )
        try:
            warm = PARTITIONS * 50
            produce(stack.kafka_bootstrap, topic, orders(warm), options={"linger.ms": "5"})
            if not _wait_for_positions(stack, table_uri, topic, {p: None for p in range(PARTITIONS)}, 120, worker):
                ends = _ends(stack, topic)
                msg = f"the worker did not commit the warm-up records (topic ends {ends}): see {log_path}"
                return Outcome(problems=[msg])
            total = int(rate * seconds)
            produce(
                stack.kafka_bootstrap,
                topic,
                orders(total, start=warm),
                options={"linger.ms": "5", "batch.num.messages": "1000"},
                rate=rate,
            )
            ends = _ends(stack, topic)
            if not _wait_for_positions(stack, table_uri, topic, {p: e - 1 for p, e in ends.items()}, 120, worker):
                problems.append("the worker did not catch up within 120 s after the producer stopped")
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    latencies = _latencies(stack, table_uri, topic, first_offset=warm // PARTITIONS)
    if latencies.size == 0:
        return Outcome(problems=[*problems, "no latencies measured"])
    p50, p95, p99 = (float(np.percentile(latencies, q)) for q in (50, 95, 99))
    figures: dict[str, Any] = {
        "freshness_rate": rate,
        "freshness_seconds": seconds,
        "freshness_records": int(latencies.size),
        "freshness_p50_s": round(p50, 3),
        "freshness_p95_s": round(p95, 3),
        "freshness_p99_s": round(p99, 3),
        "freshness_max_s": round(float(latencies.max()), 3),
        "freshness_goal_met": p99 <= GOAL_P99_S,
        "freshness_cdf": _cdf(latencies),
    }
    return Outcome(figures=figures, problems=problems)


def _ends(stack: Any, topic: str) -> dict[int, int]:
    import confluent_kafka as ck

    consumer = ck.Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": f"ends-{topic}"})
    try:
        return {
            p: consumer.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)
        }
    finally:
        consumer.close()


def _wait_for_positions(
    stack: Any, uri: str, topic: str, wanted: dict[int, int | None], timeout_s: float, worker: subprocess.Popen[bytes]
) -> bool:
    """Wait until the table stores a position for every partition (at least ``wanted`` where given)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    options = stack.settings.s3_storage_options()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and worker.poll() is None:
        try:
            history = DeltaTable(uri, storage_options=options).history(50)
        except TableNotFoundError:
            time.sleep(0.5)
            continue
        stored: dict[int, int] = {}
        for commit in history:
            for key, last in json.loads(commit.get("stream_etl.positions", "{}")).items():
                partition = int(key.rsplit("-", 1)[1])
                stored[partition] = max(stored.get(partition, -1), last)
        if all(p in stored and (w is None or stored[p] >= w) for p, w in wanted.items()):
            return True
        time.sleep(0.5)
    return False


def _latencies(stack: Any, uri: str, topic: str, *, first_offset: int) -> np.ndarray:
    """Seconds from each record's produce timestamp to the commit that made it visible."""
    import confluent_kafka as ck
    from deltalake import DeltaTable

    history = sorted(
        DeltaTable(uri, storage_options=stack.settings.s3_storage_options()).history(), key=lambda c: c["version"]
    )
    covered: dict[int, list[tuple[int, float]]] = {}
    for commit in history:
        for key, last in json.loads(commit.get("stream_etl.positions", "{}")).items():
            covered.setdefault(int(key.rsplit("-", 1)[1]), []).append((last, commit["timestamp"] / 1000))
    consumer = ck.Consumer(
        {"bootstrap.servers": stack.kafka_bootstrap, "group.id": f"fresh-read-{topic}", "enable.partition.eof": True}
    )
    results: list[np.ndarray] = []
    try:
        for partition, commits in covered.items():
            consumer.assign([ck.TopicPartition(topic, partition, first_offset)])
            offsets, stamps = [], []
            while True:
                messages = consumer.consume(10_000, timeout=5)
                if not messages:
                    break
                done = False
                for m in messages:
                    if m.error() is not None:
                        done = True
                        continue
                    offsets.append(m.offset())
                    stamps.append(m.timestamp()[1] / 1000)
                if done:
                    break
            lasts = np.array([c[0] for c in commits])
            times = np.array([c[1] for c in commits])
            order = np.argsort(lasts, kind="stable")
            lasts, times = lasts[order], np.minimum.accumulate(times[order][::-1])[::-1]
            index = np.searchsorted(lasts, np.array(offsets), side="left")
            visible = index < len(lasts)
            results.append(times[index[visible]] - np.array(stamps)[visible])
    finally:
        consumer.close()
    return np.concatenate(results) if results else np.array([])


def _cdf(latencies: np.ndarray) -> list[list[float]]:
    """[latency s, fraction] at 100 quantiles, for the report's plot."""
    qs = np.linspace(0, 100, 101)
    return [[round(float(np.percentile(latencies, q)), 4), round(q / 100, 2)] for q in qs]
