"""`make bench`: the engine end to end (Kafka -> topology -> Delta on S3) against a bare consumer.

    python -m bench.run [--records 1000000] [--partitions 4] [--repeat 1] [--keep-stack]
                        [--out bench/results/latest.json]

Starts a local Tansu + SeaweedFS on free loopback ports (or uses the stack named by
STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS and STREAM_ETL_S3_ENDPOINT_URL), produces sample
orders into a fresh topic, then per repeat measures (1) a bare confluent-kafka
consumer of the topic in a fresh process and (2) `stream-etl run topologies/orders.py
--until-caught-up` in a fresh process, verifies the Delta table it wrote, and writes
the figures to --out and one line to history.jsonl beside it. See bench/README.md.

Exit code 0 when the benchmark ran and the output table was right (missed targets
are reported, not failed), 1 when something broke or the table was wrong.
"""

from __future__ import annotations

import argparse
import compileall
import functools
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench.checks import Expected, SampleValues, commit_history, expected_output, verify_table
from bench.procs import Measured, cpu_seconds, run_measured
from bench.report import machine_info, print_summary, write_results
from bench.scenarios import SCENARIOS, Context
from bench.stack import Stack, bench_stack
from stream_etl.devstack import installed_executable

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGY = ROOT / "topologies" / "orders.py"
MB = 1024 * 1024

#: Targets on the 2-core reference machine (from the issue).
TARGET_RATIO = 0.85
TARGET_RATIO_ASSIGN = 0.6
TARGET_RSS_MB = 400.0


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from stream_etl.sources import SourceReader

    poll_records = SourceReader.poll_records

    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000, help="records to produce (default 1000000)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the fresh topic (default 4)")
    parser.add_argument("--repeat", type=int, default=1, help="measure both consumers this many times (default 1)")
    parser.add_argument(
        "--keep-stack", action="store_true", help="leave the local stack running afterwards (prints how to stop it)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/latest.json", help="results file")
    parser.add_argument(
        "--history",
        type=Path,
        default=None,
        help="JSON-lines history to append to (default: history.jsonl beside --out)",
    )
    parser.add_argument("--no-history", action="store_true", help="do not append to the history")
    parser.add_argument("--skip-scenarios", action="store_true", help="only the main comparison, no extra scenarios")
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this extra scenario (repeatable; default: all of them)",
    )
    parser.add_argument("--freshness-rate", type=int, default=20_000, help="records/s of the freshness scenario")
    parser.add_argument(
        "--freshness-seconds", type=float, default=60.0, help="how long the freshness scenario produces"
    )
    parser.add_argument(
        "--modes",
        default="group,direct",
        help="comma-separated: group (subscribe) and/or direct (assign every partition) (default both)",
    )
    parser.add_argument(
        "--engine-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra job argument for the topology, e.g. batch_records=200000 (repeatable)",
    )
    parser.add_argument(
        "--num-messages",
        type=int,
        default=poll_records,
        help=f"num_messages per consume() of the bare consumer (default: the engine's on confluent-kafka's Message path, {poll_records})",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=30.0,
        metavar="S",
        help="before each measurement wait up to S seconds for the machine to be idle (default 30; 0: do not wait)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="kill a measured process after this many seconds")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="run the engine under `py-spy record --threads` and write speedscope profiles to DIR "
        "(slows the engine down; the results are marked profiled and not added to the history)",
    )
    parser.add_argument(
        "--py-spy-arg", action="append", default=[], metavar="ARG", help="extra py-spy record argument, e.g. --gil"
    )
    args = parser.parse_args(argv)
    if args.records < 1 or args.partitions < 1 or args.repeat < 1:
        parser.error("--records, --partitions and --repeat must be >= 1")
    for item in args.engine_arg:
        if "=" not in item:
            parser.error(f"--engine-arg {item!r} is not KEY=VALUE")
    args.modes = {m.strip() for m in args.modes.split(",") if m.strip()}
    if not args.modes or not args.modes <= {"group", "direct"}:
        parser.error("--modes takes group, direct or group,direct")
    if args.history is None:
        args.history = args.out.with_name("history.jsonl")
    return args


# Produce -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Produced:
    topic: str
    expected: Expected
    ends: dict[int, int]
    generate_s: float
    produce_s: float
    avg_bytes: float


def produce_topic(stack: Stack, topic: str, samples: SampleValues, partitions: int) -> Produced:
    from connectors.kafka.admin import ensure_topic, produce

    options = stack.settings.kafka_config()
    values, generate_s = samples.result()
    records = len(values)
    expected = expected_output(values)
    avg_bytes = sum(map(len, values)) / records
    log(f"generated {records:,} records ({avg_bytes:.0f} bytes on average) in {generate_s:.1f}s")
    if not ensure_topic(stack.kafka_bootstrap, topic, partitions=partitions, options=options):
        msg = f"topic {topic} already exists: the benchmark needs a fresh one"
        raise RuntimeError(msg)
    started = time.perf_counter()
    sent = produce(stack.kafka_bootstrap, topic, values, options=options)
    produce_s = time.perf_counter() - started
    del values
    gc.collect()
    ends = high_watermarks(stack, topic, partitions)
    if sent != records or sum(ends.values()) != records:
        msg = f"produced {sent:,} records but the topic's partitions end at {ends} (sum {sum(ends.values()):,})"
        raise RuntimeError(msg)
    log(f"produced {records:,} records to {topic} in {produce_s:.2f}s ({records / produce_s:,.0f} msg/s); ends {ends}")
    return Produced(topic, expected, ends, generate_s, produce_s, avg_bytes)


def high_watermarks(stack: Stack, topic: str, partitions: int) -> dict[int, int]:
    """Where each partition ends: read from the ListOffsets high watermark - 1 up to end-of-partition.

    Tansu's ListOffsets answers the base offset of the last record batch + 1, not the
    end of the partition, so the watermark alone understates it.
    """
    import confluent_kafka as ck

    consumer = ck.Consumer(
        {
            **stack.settings.kafka_config(),
            "bootstrap.servers": stack.kafka_bootstrap,
            "group.id": "bench-watermarks",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    ends: dict[int, int] = {}
    try:
        starts = [
            ck.TopicPartition(
                topic, p, max(consumer.get_watermark_offsets(ck.TopicPartition(topic, p), 15, False)[1] - 1, 0)
            )
            for p in range(partitions)
        ]
        consumer.assign(starts)
        deadline = time.monotonic() + 60
        while len(ends) < partitions and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=10_000, timeout=0.5):
                error = message.error()
                if error is not None and error.code() == ck.KafkaError._PARTITION_EOF:
                    ends[message.partition()] = message.offset()
    finally:
        consumer.close()
    if len(ends) < partitions:
        msg = f"could not find the end of every partition of {topic}: {ends}"
        raise RuntimeError(msg)
    return dict(sorted(ends.items()))


# Measuring ---------------------------------------------------------------------------------------


def _cpu_times() -> dict[str, float]:
    """Machine-wide CPU seconds: process time (user, nice, system), interrupts, and steal
    (time a virtual machine's CPUs waited for the host)."""
    times = psutil.cpu_times()
    return {
        "busy": times.user + times.nice + times.system,
        "irq": getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0),
        "steal": getattr(times, "steal", 0.0),
    }


def _busy_cpu_s() -> float:
    return _cpu_times()["busy"]


class Phase:
    """CPU used on the machine while a measured process ran: by the stack, by us, by anything else."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.me = psutil.Process()

    def __enter__(self) -> Phase:
        self.times = _cpu_times()
        self.stack_cpu = cpu_seconds(self.stack.pids)
        own = self.me.cpu_times()
        self.own = own.user + own.system
        return self

    def __exit__(self, *exc: object) -> None:
        after = _cpu_times()
        self.times = {k: after[k] - self.times[k] for k in after}
        after = cpu_seconds(self.stack.pids)
        self.stack_cpu = {k: round(after[k] - self.stack_cpu.get(k, 0.0), 2) for k in after}
        own = self.me.cpu_times()
        self.own = own.user + own.system - self.own

    def report(self, measured: Measured) -> dict[str, Any]:
        other = self.times["busy"] - measured.cpu_s - sum(self.stack_cpu.values()) - self.own
        return {
            "stack_cpu_s": self.stack_cpu,
            "bench_cpu_s": round(self.own, 2),
            "machine_busy_cpu_s": round(self.times["busy"], 2),
            "interrupt_cpu_s": round(self.times["irq"], 2),
            "steal_cpu_s": round(self.times["steal"], 2),
            "other_cpu_s": round(max(other, 0.0), 2),
        }


def wait_quiet(max_s: float, *, window_s: float = 0.5, idle_cores: float = 0.25) -> dict[str, float]:
    """Wait (up to ``max_s``) until the machine's CPUs are idle: on a 2-core box anything
    else running (a test suite, a build) changes the figures a lot."""
    started = time.monotonic()
    while True:
        before = _busy_cpu_s()
        time.sleep(window_s)
        busy = (_busy_cpu_s() - before) / window_s
        waited = time.monotonic() - started
        if busy <= idle_cores or waited >= max_s:
            if busy > idle_cores:
                log(f"the machine is still busy ({busy:.2f} cores in use) after {waited:.0f}s: measuring anyway")
            return {"waited_s": round(waited, 1), "busy_cores": round(busy, 2)}


def contended(run: dict[str, Any]) -> list[str]:
    """Phases during which other processes, or the VM's host (steal), took more than a tenth of a core."""
    found = []
    for phase, wall in (("raw", run["raw_exit_s"]), ("e2e", run["e2e_exit_s"])):
        machine = run[f"{phase}_machine"]
        for key, what in (("other_cpu_s", "used by other processes"), ("steal_cpu_s", "stolen by the VM host")):
            if wall and machine[key] > 0.1 * wall:
                found.append(f"run {run['run']} {phase}: {machine[key]:.1f} CPU-s {what} in {wall:.1f}s")
    return found


#: The fetch tuning of the reference consumers (the bare consumer here, the peers in
#: bench/peers): the issue's first harness measured the bare consumer with it, and larger
#: fetches and queues suit a consumer that builds a Message per record. The engine bounds its
#: prefetch lower (connectors.kafka.config.TUNED_CONSUMER_DEFAULTS) to save memory.
REFERENCE_FETCH_TUNING: dict[str, str] = {
    "fetch.queue.backoff.ms": "10",
    "fetch.wait.max.ms": "10",
    "fetch.max.bytes": "52428800",
    "max.partition.fetch.bytes": "10485760",
    "queued.max.messages.kbytes": "32768",
}


def consumer_config(stack: Stack, group: str) -> dict[str, Any]:
    """What KafkaReader builds for a worker in until-caught-up mode (connectors/kafka/source.py),
    with the reference fetch tuning."""
    settings = stack.settings
    return {
        **REFERENCE_FETCH_TUNING,
        **settings.kafka_config(),
        **settings.kafka_consumer_config(),
        "bootstrap.servers": stack.kafka_bootstrap,
        "group.id": group,
        "client.id": f"stream-etl-{group}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
    }


def measure_raw(
    stack: Stack, produced: Produced, run_id: str, args: argparse.Namespace, logs: Path, *, direct: bool = False
) -> dict[str, Any]:
    """A bare consumer in a fresh process: in the consumer group (``subscribe``), or with every
    partition assigned directly (``direct``)."""
    records = produced.expected.records
    group = f"bench-raw-{'assign-' if direct else ''}{run_id}"
    command = [
        sys.executable,
        "-m",
        "bench.raw_consumer",
        "--config",
        json.dumps(consumer_config(stack, group)),
        "--topic",
        produced.topic,
        "--expected",
        str(records),
        "--num-messages",
        str(args.num_messages),
        "--deadline",
        str(args.timeout),
        *(["--assign"] if direct else []),
    ]
    out_path, err_path = logs / f"{group}.out", logs / f"{group}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err, Phase(stack) as phase:
        measured = run_measured(
            command, env=stack.child_environment(), cwd=ROOT, stdout=out, stderr=err, timeout_s=args.timeout
        )
    lines = [line for line in out_path.read_text().splitlines() if line.startswith("{")]
    if measured.returncode != 0 or not lines:
        msg = f"the bare consumer failed (exit {measured.returncode}): {err_path.read_text()[-2000:]} {lines[-1:]}"
        raise RuntimeError(msg)
    report = json.loads(lines[-1])
    launched = measured.launched_at
    total_s = report["last_at"] - launched
    steady_s = report["last_at"] - report["first_at"]
    return {
        "raw_consume_msgs_per_s": round(records / total_s, 1),
        "raw_consume_steady_msgs_per_s": round((records - report["first_count"]) / steady_s, 1)
        if steady_s > 0
        else None,
        "raw_startup_s": round(report["started_at"] - launched, 3),
        "raw_assigned_s": round(report["assigned_at"] - launched, 3) if report.get("assigned_at") else None,
        "raw_first_record_s": round(report["first_at"] - launched, 3),
        "raw_total_s": round(total_s, 3),
        "raw_exit_s": round(measured.wall_s, 3),
        "raw_peak_rss_mb": round(measured.peak_rss_bytes / MB, 1),
        "raw_cpu_s": round(measured.cpu_s, 2),
        "raw_threads_cpu_s": measured.threads_cpu_s,
        "raw_consume_calls": report["consume_calls"],
        "raw_group": group,
        "raw_machine": phase.report(measured),
    }


def py_spy() -> str:
    found = installed_executable("py-spy")
    if found is None:
        msg = "--profile needs py-spy: .venv/bin/pip install py-spy"
        raise RuntimeError(msg)
    return str(found)


def parse_engine_summary(stdout: str) -> dict[str, Any]:
    """The engine's --json summary (pretty-printed, possibly after other output)."""
    lines = stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("{")]
    ends = [i for i, line in enumerate(lines) if line.startswith("}")]
    if not starts or not ends:
        msg = f"no JSON summary in the engine's output: {stdout[-1000:]!r}"
        raise RuntimeError(msg)
    summary: dict[str, Any] = json.loads("\n".join(lines[starts[0] : ends[-1] + 1]))
    return summary


def table_files(table: Any, dataset: Any) -> dict[str, Any]:
    """How many data files the table has, their total size, and the Parquet codec of one of them."""
    import pyarrow.compute as pc

    actions = pa_table(table.get_add_actions(flatten=True))
    codec = None
    for fragment in dataset.get_fragments():
        metadata = fragment.metadata
        if metadata.num_row_groups:
            codec = metadata.row_group(0).column(0).compression
            break
    return {
        "count": actions.num_rows,
        "bytes": int(pc.sum(actions["size_bytes"]).as_py() or 0),
        "codec": codec,
    }


def pa_table(value: Any) -> Any:
    import pyarrow as pa

    return value if isinstance(value, pa.Table) else pa.table(value)


@functools.cache
def precompile(source_tree: Path) -> None:
    """Write the ``.pyc`` files of the engine's source tree. An editable install compiles its
    modules on first import and caches them, unless ``PYTHONDONTWRITEBYTECODE`` is set (as on
    these machines): then the engine would compile its ~70 modules again at every launch (~0.1 s
    of its start-up), which a user's installed package never does. Once per tree and run."""
    for package in ("stream_etl", "connectors", "topologies"):
        compileall.compile_dir(source_tree / package, quiet=1)


def measure_engine(
    stack: Stack,
    produced: Produced,
    run_id: str,
    args: argparse.Namespace,
    logs: Path,
    *,
    topology: Path = TOPOLOGY,
    label: str = "engine",
    job_args: tuple[str, ...] = (),
    source_tree: Path = ROOT,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``topology`` over the produced topic until caught up, in a fresh process, and verify
    its table: it must hold the columns ``id`` and ``amount_cents`` of every valid order once.
    ``source_tree``: run the engine of another checkout, ``env``: with extra environment variables
    (bench/ab.py compares variants)."""
    from deltalake import DeltaTable

    from connectors.delta.sink import txn_app_id
    from stream_etl.records import SourcePartition

    precompile(source_tree)
    records = produced.expected.records
    app_id = f"bench-{label}-{run_id}"
    table_uri = f"s3://{stack.bucket}/bench-{run_id}/{label}"
    command = [
        sys.executable,
        "-m",
        "stream_etl",
        "run",
        str(source_tree / topology.relative_to(ROOT)),
        "--until-caught-up",
        "--json",
        "--app-id",
        app_id,
        "--arg",
        f"topic={produced.topic}",
        "--arg",
        f"table={table_uri}",
        # The 3-step topology (filter, derive, project) writes an unpartitioned
        # table, like the reference hand-written pipeline; --engine-arg partition_by=country
        # measures the example's partitioned layout instead (~0.4 CPU-s more per 1M rows).
        "--arg",
        "partition_by=",
    ]
    for item in (*job_args, *args.engine_arg):
        command += ["--arg", item]
    profile_path = None
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        profile_path = args.profile / f"{label}-{run_id}.speedscope.json"
        command = [
            py_spy(),
            "record",
            "--format",
            "speedscope",
            "--threads",
            "--nonblocking",
            "-o",
            str(profile_path),
            *args.py_spy_arg,
            "--",
            *command,
        ]
    out_path, err_path = logs / f"{label}-{run_id}.out", logs / f"{label}-{run_id}.err"
    child_env = {**stack.child_environment(), **(env or {})}
    if source_tree != ROOT:
        child_env["PYTHONPATH"] = str(source_tree)
    with out_path.open("wb") as out, err_path.open("wb") as err, Phase(stack) as phase:
        measured = run_measured(command, env=child_env, cwd=source_tree, stdout=out, stderr=err, timeout_s=args.timeout)
    if measured.returncode != 0:
        msg = f"the engine failed (exit {measured.returncode}):\n{err_path.read_text()[-3000:]}"
        raise RuntimeError(msg)
    summary = parse_engine_summary(out_path.read_text())

    options = stack.settings.s3_storage_options()
    table = DeltaTable(table_uri, storage_options=options)
    commits = commit_history(table.history())
    dataset = table.to_pyarrow_dataset()
    output = dataset.to_table(columns=["id", "amount_cents"])
    files = table_files(table, dataset)
    stored = {
        p: table.transaction_version(txn_app_id(app_id, SourcePartition(produced.topic, p))) for p in produced.ends
    }
    problems = verify_table(output, produced.expected, stored_positions=stored, ends=produced.ends)
    stats = summary.get("stats", {})
    expected = produced.expected
    for key, want in (
        ("records_in", records),
        ("written", expected.rows),
        ("filtered", records - expected.rows),
        ("dead_lettered", 0),
    ):
        if stats.get(key) != want:
            problems.append(f"the engine reports {key}={stats.get(key)}, expected {want}")
    if commits.records != records:
        problems.append(f"the commits' stored positions cover {commits.records:,} records, expected {records:,}")
    dead = next((s for n, s in summary.get("sinks", {}).items() if n.endswith("dead_letters")), {})
    if dead.get("rows"):
        problems.append(f"{dead['rows']} dead letters, expected none")

    launched = measured.launched_at
    first_at, last_at = commits.first_at, commits.last_at
    total_s = (last_at - launched) if last_at else None
    steady_s = (last_at - first_at) if last_at and first_at else None
    return {
        "e2e_rows_per_s": round(records / total_s, 1) if total_s else None,
        "e2e_steady_rows_per_s": round((records - commits.first_records) / steady_s, 1) if steady_s else None,
        "e2e_exit_rows_per_s": round(records / measured.wall_s, 1),
        "e2e_first_commit_s": round(first_at - launched, 3) if first_at else None,
        "e2e_total_s": round(total_s, 3) if total_s else None,
        "e2e_exit_s": round(measured.wall_s, 3),
        "e2e_shutdown_s": round(measured.exited_at - last_at, 3) if last_at else None,
        "peak_rss_mb": round(measured.peak_rss_bytes / MB, 1),
        "rss_samples": measured.rss_samples,
        "e2e_rss_timeline_mb": measured.rss_timeline,
        "e2e_cpu_s": round(measured.cpu_s, 2),
        "e2e_cpu_user_s": round(measured.cpu_user_s, 2),
        "e2e_cpu_system_s": round(measured.cpu_system_s, 2),
        "e2e_cores_used": round(measured.cpu_s / measured.wall_s, 2),
        "e2e_threads_cpu_s": measured.threads_cpu_s,
        "e2e_machine": phase.report(measured),
        "delta_commits": commits.as_dict(),
        "table": table_uri,
        "table_version": table.version(),
        "table_rows": output.num_rows,
        "table_files": files,
        "app_id": app_id,
        "engine_summary": summary,
        "profile": str(profile_path) if profile_path else None,
        "problems": problems,
    }


def measure_direct(
    stack: Stack, produced: Produced, run_id: str, args: argparse.Namespace, logs: Path
) -> dict[str, Any]:
    """Direct mode: a bare consumer assigned every partition, then the engine with
    ``assignment=direct`` (one worker, no group join; safe because positions live in the
    Delta log). Figures carry ``assign`` in their keys."""
    wait_quiet(args.wait_quiet)
    log("  direct mode: bare consumer")
    raw = measure_raw(stack, produced, run_id, args, logs, direct=True)
    wait_quiet(args.wait_quiet)
    log("  direct mode: engine")
    engine = measure_engine(stack, produced, run_id, args, logs, label="assign", job_args=("assignment=direct",))
    figures = {
        "raw_consume_assign_msgs_per_s": raw["raw_consume_msgs_per_s"],
        "raw_consume_assign_steady_msgs_per_s": raw["raw_consume_steady_msgs_per_s"],
        "raw_assign_first_record_s": raw["raw_first_record_s"],
        "raw_assign_total_s": raw["raw_total_s"],
        "e2e_assign_rows_per_s": engine["e2e_rows_per_s"],
        "e2e_assign_steady_rows_per_s": engine["e2e_steady_rows_per_s"],
        "e2e_assign_first_commit_s": engine["e2e_first_commit_s"],
        "e2e_assign_total_s": engine["e2e_total_s"],
        "e2e_assign_peak_rss_mb": engine["peak_rss_mb"],
        "e2e_assign_cpu_s": engine["e2e_cpu_s"],
    }
    rate, bare = figures["e2e_assign_rows_per_s"], figures["raw_consume_assign_msgs_per_s"]
    figures["ratio_assign"] = round(rate / bare, 3) if rate and bare else None
    log(f"  direct mode: engine {rate or 0:,.0f} rec/s vs bare {bare or 0:,.0f} msg/s")
    return {**figures, "assign_problems": [f"direct mode: {p}" for p in engine["problems"]]}


# Main ----------------------------------------------------------------------------------------


def _median(values: list[Any]) -> Any:
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) != len(values) or not numbers:
        return values[0] if values else None
    return round(statistics.median(numbers), 3)


def headline(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of a single run; over repeats, the median of each numeric figure (other
    fields, such as the engine summary, are the last repeat's)."""
    flat = {k: v for k, v in runs[-1].items() if k != "run"}
    if len(runs) > 1:
        for key, value in flat.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                flat[key] = _median([r.get(key) for r in runs])
    return flat


def targets(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    ratio, rss = flat.get("ratio"), flat.get("peak_rss_mb")
    return {
        "ratio": {"goal": f">= {TARGET_RATIO}", "measured": ratio, "met": ratio is not None and ratio >= TARGET_RATIO},
        "peak_rss_mb": {
            "goal": f"<= {TARGET_RSS_MB:.0f}",
            "measured": rss,
            "met": rss is not None and rss <= TARGET_RSS_MB,
        },
        **_assign_target(flat),
        **_rich_target(flat),
        **_freshness_target(flat),
    }


def _assign_target(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    if "ratio_assign" not in flat:
        return {}
    ratio = flat["ratio_assign"]
    goal = TARGET_RATIO_ASSIGN
    return {"ratio_assign": {"goal": f">= {goal}", "measured": ratio, "met": ratio is not None and ratio >= goal}}


def _freshness_target(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    if "freshness_p99_s" not in flat:
        return {}
    from bench.scenarios.freshness import GOAL_P99_S

    p99 = flat["freshness_p99_s"]
    return {
        "freshness_p99_s": {"goal": f"<= {GOAL_P99_S}", "measured": p99, "met": p99 is not None and p99 <= GOAL_P99_S}
    }


def _rich_target(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    if "e2e_rich_vs_simple" not in flat:
        return {}
    from bench.scenarios.rich import GOAL

    ratio = flat["e2e_rich_vs_simple"]
    return {"e2e_rich_vs_simple": {"goal": f">= {GOAL}", "measured": ratio, "met": ratio is not None and ratio >= GOAL}}


def bench(args: argparse.Namespace) -> int:
    run_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    info = machine_info(ROOT)
    log(f"run {run_id}: {args.records:,} records, {args.partitions} partitions, {args.repeat} repeat(s)")
    logs = Path(tempfile.mkdtemp(prefix="stream-etl-bench-logs-"))
    samples = SampleValues(args.records)  # in worker processes, while the stack starts
    try:
        with bench_stack(keep=args.keep_stack) as stack:
            where = "external" if stack.external else f"local, started in {stack.startup_s:.1f}s"
            log(f"stack ({where}): Kafka {stack.kafka_bootstrap}, S3 {stack.environment['STREAM_ETL_S3_ENDPOINT_URL']}")
            produced = produce_topic(stack, f"bench-orders-{run_id}", samples, args.partitions)
            runs: list[dict[str, Any]] = []
            for index in range(args.repeat):
                suffix = f"{run_id}-{index + 1}"
                raw_quiet = wait_quiet(args.wait_quiet)
                log(f"repeat {index + 1}/{args.repeat}: bare consumer")
                raw = {**measure_raw(stack, produced, suffix, args, logs), "raw_quiet": raw_quiet}
                log(
                    f"  bare consumer: {raw['raw_consume_msgs_per_s']:,.0f} msg/s from process start "
                    f"({raw['raw_total_s']:.2f}s), {raw['raw_consume_steady_msgs_per_s'] or 0:,.0f} msg/s steady"
                )
                engine_quiet = wait_quiet(args.wait_quiet)
                log(f"repeat {index + 1}/{args.repeat}: engine")
                engine = {**measure_engine(stack, produced, suffix, args, logs), "e2e_quiet": engine_quiet}
                log(
                    f"  engine: {engine['e2e_rows_per_s'] or 0:,.0f} rec/s from process start "
                    f"({engine['e2e_total_s']}s to the last commit), peak RSS {engine['peak_rss_mb']:.0f} MB"
                )
                run = {"run": index + 1, **raw, **engine}
                run["ratio"] = (
                    round(run["e2e_rows_per_s"] / run["raw_consume_msgs_per_s"], 3) if run["e2e_rows_per_s"] else None
                )
                steady_raw, steady_e2e = run["raw_consume_steady_msgs_per_s"], run["e2e_steady_rows_per_s"]
                run["steady_ratio"] = round(steady_e2e / steady_raw, 3) if steady_raw and steady_e2e else None
                if "direct" in args.modes:
                    run.update(measure_direct(stack, produced, suffix, args, logs))
                run["contended"] = contended(run)
                if run["contended"]:
                    log(f"  warning: other processes used the CPU during this repeat: {run['contended']}")
                runs.append(run)
            flat = headline(runs)
            problems = [f"run {r['run']}: {p}" for r in runs for p in (*r["problems"], *r.get("assign_problems", ()))]
            if not args.skip_scenarios:
                context = Context(stack, produced.topic, args.records, run_id, args, logs, flat, produced)
                for name, scenario in SCENARIOS:
                    if args.scenario and name not in args.scenario:
                        continue
                    log(f"scenario {name}")
                    outcome = scenario(context)
                    flat.update(outcome.figures)
                    problems += [f"{name}: {p}" for p in outcome.problems]
            results: dict[str, Any] = {
                "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
                "run_id": run_id,
                "records": args.records,
                "partitions": args.partitions,
                "repeat": args.repeat,
                "record_bytes_avg": round(produced.avg_bytes, 1),
                "produce_msgs_per_s": round(args.records / produced.produce_s, 1),
                "produce_s": round(produced.produce_s, 3),
                "generate_s": round(produced.generate_s, 3),
                "expected": produced.expected.as_dict(),
                "partition_records": produced.ends,
                **flat,
                "contended": [c for r in runs for c in r["contended"]],
                "verified": not problems,
                "problems": problems,
                "profiled": args.profile is not None,
                "engine_args": args.engine_arg,
                "num_messages": args.num_messages,
                "stack": {"external": stack.external, "startup_s": round(stack.startup_s, 2)},
                "machine": info,
                "runs": runs,
            }
            results["targets"] = targets(results)
            results["ok"] = not problems
    finally:
        samples.close()
    history = None if args.no_history or args.profile is not None or problems else args.history
    write_results(results, args.out, history)
    print_summary(results)
    if args.out.name == "latest.json":
        from bench.markdown import render

        log(f"report: {render(args.out.parent)}")
    log(f"results: {args.out}" + (f" (+1 line in {history})" if history else "") + f"; process logs in {logs}")
    return 0 if not problems else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return bench(args)
    except KeyboardInterrupt:
        log("interrupted")
        return 1
    except Exception:  # noqa: BLE001 - report any failure, exit 1
        traceback.print_exc()
        log("the benchmark broke: no results written")
        return 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
