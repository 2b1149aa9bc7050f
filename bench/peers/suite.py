"""`make bench-peers`: Python stream processors side by side on the engine's benchmark workload.

    python -m bench.peers [--peers quix,bytewax,faust,pathway,pathway-csv] [--records 1000000]
                          [--partitions 4] [--out bench/results/peers.json]

Installs each peer into its own virtualenv under bench/.peers/<peer>/ (once; nothing is
downloaded while measuring), starts a local Tansu + SeaweedFS (bench.stack), produces the
sample orders into a fresh topic like `make bench` does, then runs each peer's app
(bench/peers/<peer>_app.py) in a fresh process with that virtualenv's python: read the topic
from the beginning, keep amount >= 0, derive amount_cents, project, write a Delta table on the
local S3 (pathway-csv: the same Pathway pipeline with its native CSV writer, into a local
file; Pathway's Delta writer needs a licence key). Each is measured like the engine (launch -> last Delta commit; steady state after the
first commit), its table is checked, and the results go to --out. A peer that fails to install
or run is recorded with its error. See bench/peers/README.md.

Exit code 0 when every selected peer ran and its table verified, 1 otherwise (results are
written either way, except when the stack or the producer broke).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from bench.checks import SampleValues
from bench.peers.peer_common import COLUMNS
from bench.peers.results import (
    PeerCommits,
    csv_rows,
    engine_comparison,
    failed_entry,
    fastest,
    file_commits,
    peer_commits,
    rates,
    read_report,
    verify_output,
)
from bench.peers.venvs import PEERS, Peer, ensure_venv
from bench.procs import run_measured
from bench.report import machine_info, write_results
from bench.stack import Stack, bench_stack

ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024


def log(message: str) -> None:
    print(f"[peers {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.peers", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--peers",
        default=",".join(PEERS),
        help=f"comma-separated peers to run (default: all of {','.join(PEERS)})",
    )
    parser.add_argument("--records", type=int, default=1_000_000, help="records to produce (default 1000000)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the fresh topic (default 4)")
    parser.add_argument(
        "--batch-rows",
        type=int,
        default=100_000,
        help="records per Delta write where the peer lets the app choose (default 100000, the engine's batch)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/peers.json", help="results file")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PEER.KEY=VALUE",
        help="override one of a peer's settings, e.g. bytewax.batch_size=1000 or quix.commit_every=50000 "
        "(VALUE is JSON, else a string; repeatable)",
    )
    parser.add_argument("--setup-only", action="store_true", help="create the virtualenvs and stop")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=30.0,
        metavar="S",
        help="before each peer wait up to S seconds for the machine to be idle (default 30; 0: do not wait)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="kill a peer after this many seconds")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.peers.split(",") if n.strip()]
    unknown = [n for n in names if n not in PEERS]
    if unknown or not names:
        parser.error(f"--peers: unknown {unknown}; choose from {', '.join(PEERS)}")
    args.peers = names
    try:
        args.settings = peer_settings(args.set)
    except ValueError as exc:
        parser.error(str(exc))
    if args.records < 1 or args.partitions < 1 or args.batch_rows < 1:
        parser.error("--records, --partitions and --batch-rows must be >= 1")
    return args


def peer_settings(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["bytewax.batch_size=1000"]`` -> ``{"bytewax": {"batch_size": 1000}}``."""
    found: dict[str, dict[str, Any]] = {}
    for item in items:
        name, _, rest = item.partition(".")
        key, eq, raw = rest.partition("=")
        if name not in PEERS or not key or not eq:
            msg = f"--set {item!r}: expected PEER.KEY=VALUE with PEER one of {', '.join(PEERS)}"
            raise ValueError(msg)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        found.setdefault(name, {})[key] = value
    return found


def kafka_options(stack: Stack) -> dict[str, str]:
    """The reference consumers' librdkafka options: the fetch tuning the bare consumer uses
    (bench.run.REFERENCE_FETCH_TUNING) and the stack's client and consumer options (session
    timeouts for Tansu)."""
    from bench.run import REFERENCE_FETCH_TUNING

    settings = stack.settings
    return {**REFERENCE_FETCH_TUNING, **settings.kafka_config(), **settings.kafka_consumer_config()}


def measure_peer(
    stack: Stack, produced: Any, peer: Peer, versions: dict[str, str], args: argparse.Namespace, run_id: str, logs: Path
) -> dict[str, Any]:
    """Run one peer's app over the produced topic in a fresh process, then check its table."""
    from bench.run import Phase
    from connectors.kafka.config import redacted

    expected = produced.expected
    table_uri = f"s3://{stack.bucket}/peers-{run_id}/{peer.name}"
    storage_options = stack.settings.s3_storage_options()
    config = {
        "bootstrap": stack.kafka_bootstrap,
        "topic": produced.topic,
        "partitions": len(produced.ends),
        "table": table_uri,
        "storage_options": storage_options,
        "kafka": kafka_options(stack),
        "group": f"peers-{peer.name}-{run_id}",
        "expected_rows": expected.rows,
        "batch_rows": args.batch_rows,
        "settings": args.settings.get(peer.name, {}),
        "output_path": "" if peer.writes_delta else str(logs / f"{peer.name}.csv"),
    }
    command = [str(peer.python), str(peer.app_path), "--config", json.dumps(config)]
    out_path, err_path = logs / f"{peer.name}.out", logs / f"{peer.name}.err"
    # Its own working directory: Quix (state/) and Faust (<app>-data/) write there.
    workdir = logs / f"{peer.name}-work"
    workdir.mkdir(exist_ok=True)
    with out_path.open("wb") as out, err_path.open("wb") as err, Phase(stack) as phase:
        measured = run_measured(
            command, env=stack.child_environment(), cwd=workdir, stdout=out, stderr=err, timeout_s=args.timeout
        )
    report = read_report(out_path.read_text())
    problems: list[str] = []
    if measured.timed_out:
        problems.append(f"killed after {args.timeout:.0f}s")
    if measured.returncode != 0:
        problems.append(f"exit {measured.returncode}: {err_path.read_text()[-1500:].strip()}")
    elif not report:
        problems.append("the app printed no report")

    if peer.writes_delta:
        commits, output, read_problems = read_delta(table_uri, storage_options)
    else:
        commits, output, read_problems = read_file_output(Path(config["output_path"]), report)
    problems += read_problems
    if output is not None:
        problems += verify_output(output, expected, written=report.get("written"))
    figures = rates(
        expected.records, measured.launched_at, commits.first_at, commits.last_at, commits.first_rows, commits.rows
    )
    return {
        "peer": peer.name,
        "package": peer.package,
        "version": versions.get(peer.package, peer.version),
        "versions": versions,
        "writes": peer.writes,
        "ok": not problems,
        **figures,
        "exit_rows_per_s": round(expected.records / measured.wall_s, 1),
        "exit_s": round(measured.wall_s, 3),
        "verified": output is not None and not problems,
        "problems": problems,
        "settings": {k: redacted(v) if isinstance(v, dict) else v for k, v in report.get("settings", {}).items()},
        "commits": commits.as_dict(),
        "app_report": {k: v for k, v in report.items() if k != "settings"},
        "peak_rss_mb": round(measured.peak_rss_bytes / MB, 1),
        "cpu_s": round(measured.cpu_s, 2),
        "cores_used": round(measured.cpu_s / measured.wall_s, 2) if measured.wall_s else None,
        "threads_cpu_s": measured.threads_cpu_s,
        "machine_during_run": phase.report(measured),
        "table": table_uri if peer.writes_delta else config["output_path"],
        "rows": output.num_rows if output is not None else None,
        "columns": list(COLUMNS),
        "logs": {"stdout": str(out_path), "stderr": str(err_path)},
    }


def read_delta(table_uri: str, storage_options: dict[str, str]) -> tuple[PeerCommits, pa.Table | None, list[str]]:
    """A Delta-writing peer's commits and table."""
    from deltalake import DeltaTable

    try:
        table = DeltaTable(table_uri, storage_options=storage_options)
        return peer_commits(table.history()), table.to_pyarrow_dataset().to_table(), []
    except Exception as exc:  # noqa: BLE001 - no table is a finding about the peer
        return peer_commits([]), None, [f"cannot read the table {table_uri}: {exc}"]


def read_file_output(path: Path, report: dict[str, Any]) -> tuple[PeerCommits, pa.Table | None, list[str]]:
    """A CSV-writing peer's writes (as its app saw the file grow) and its rows; the file is
    deleted once read (1M rows are ~100 MB)."""
    import pyarrow.csv as pa_csv

    commits = file_commits(report)
    try:
        table = pa_csv.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - no file is a finding about the peer
        return commits, None, [f"cannot read {path}: {exc}"]
    finally:
        path.unlink(missing_ok=True)
    output, problems = csv_rows(table)
    return commits, output, problems


def setup(names: list[str]) -> dict[str, dict[str, str] | str]:
    """Installed versions per peer, or the error that stopped its installation."""
    done: dict[str, dict[str, str] | str] = {}
    for name in names:
        peer = PEERS[name]
        log(f"setting up {name}: {' '.join(peer.requirements())} in {peer.venv}")
        started = time.monotonic()
        try:
            done[name] = ensure_venv(peer)
            log(f"  {name} ready ({time.monotonic() - started:.0f}s): {done[name]}")
        except Exception as exc:  # noqa: BLE001 - a peer that does not install is a result
            done[name] = str(exc)
            log(f"  {name} could not be installed: {str(exc).splitlines()[-1] if str(exc) else exc!r}")
    return done


def suite(args: argparse.Namespace) -> int:
    from bench.run import produce_topic, wait_quiet

    run_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    installed = setup(args.peers)
    if args.setup_only:
        return 0 if all(isinstance(v, dict) for v in installed.values()) else 1
    logs = Path(tempfile.mkdtemp(prefix="stream-etl-peers-logs-"))
    samples = SampleValues(args.records)
    entries: dict[str, dict[str, Any]] = {}
    try:
        with bench_stack() as stack:
            produced = produce_topic(stack, f"peers-orders-{run_id}", samples, args.partitions)
            for name in args.peers:
                peer = PEERS[name]
                versions = installed[name]
                if isinstance(versions, str):
                    entries[name] = failed_entry(name, peer.package, peer.version, "install", versions)
                    continue
                quiet = wait_quiet(args.wait_quiet)
                log(f"{name}: running {peer.app} ({args.records:,} records)")
                try:
                    entry = measure_peer(stack, produced, peer, versions, args, run_id, logs)
                except Exception:  # noqa: BLE001 - one peer breaking does not stop the others
                    entries[name] = failed_entry(name, peer.package, peer.version, "run", traceback.format_exc())
                    log(f"  {name} broke: {entries[name]['problems']}")
                    continue
                entries[name] = {**entry, "quiet": quiet}
                log(
                    f"  {name}: {entry['rows_per_s'] or 0:,.0f} rec/s from launch to the last commit, "
                    f"{entry['steady_rows_per_s'] or 0:,.0f} steady; verified={entry['verified']} "
                    + (f"problems={entry['problems']}" if entry["problems"] else "")
                )
    finally:
        samples.close()
    best = fastest(entries)
    latest_path = ROOT / "bench/results/latest.json"
    latest = json.loads(latest_path.read_text()) if latest_path.exists() else None
    results = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": run_id,
        "records": args.records,
        "partitions": args.partitions,
        "batch_rows": args.batch_rows,
        "record_bytes_avg": round(produced.avg_bytes, 1),
        "produce_msgs_per_s": round(args.records / produced.produce_s, 1),
        "expected": produced.expected.as_dict(),
        "partition_records": produced.ends,
        "peers": entries,
        "fastest": best,
        "fastest_delta": fastest({n: e for n, e in entries.items() if str(e.get("writes", "")).startswith("delta")}),
        "engine": engine_comparison(latest, best, args.records),
        "ok": all(e.get("verified") for e in entries.values()),
        "machine": machine_info(ROOT),
    }
    write_results(results, args.out, None)
    print_table(results)
    log(f"results: {args.out}; process logs in {logs}")
    return 0 if results["ok"] else 1


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{results['records']:,} records, {results['partitions']} partitions, one worker each")
    print(f"{'peer':<12} {'version':<10} {'rows/s':>10} {'steady':>10} {'first':>7} {'total':>7} {'RSS MB':>7}  ok")
    for name, e in results["peers"].items():
        print(
            f"{name:<12} {e.get('version') or '-':<10} {_n(e.get('rows_per_s')):>10} "
            f"{_n(e.get('steady_rows_per_s')):>10} {_n(e.get('first_commit_s'), 1):>7} {_n(e.get('total_s'), 1):>7} "
            f"{_n(e.get('peak_rss_mb')):>7}  {'yes' if e.get('verified') else 'NO: ' + '; '.join(e['problems'])[:200]}"
        )
    engine = results.get("engine")
    if engine:
        print(
            f"engine ({engine['mode']} mode, {engine['from']} {engine['timestamp']}): {_n(engine['e2e_rows_per_s'])} "
            f"rows/s = {engine['vs_fastest_peer']} x the fastest peer; steady {engine['steady_vs_fastest_peer']} x "
            f"(goal {engine['goal']})"
        )


def _n(value: Any, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return suite(args)
    except KeyboardInterrupt:
        log("interrupted")
        return 1
    except Exception:  # noqa: BLE001 - report any failure, exit 1
        traceback.print_exc()
        log("the peers suite broke: no results written")
        return 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
