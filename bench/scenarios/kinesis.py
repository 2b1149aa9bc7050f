"""Scenario: Kinesis -> Delta on kinesalite (key ``kinesis_rows_per_s``).

Starts kinesalite (installed by `make kinesalite`) on a free loopback port, puts sample
orders into a fresh 4-shard stream (at most ``KINESIS_MAX_RECORDS``: kinesalite accepts
~12k records/s through PutRecords, so the main run's million would take minutes to put),
then times `stream-etl run topologies/kinesis_orders.py --until-caught-up` from process
start to its last Delta commit, and checks every valid order landed once.

kinesalite is a JavaScript emulator over LevelDB, far slower than Kinesis or the Kafka
broker: the figure measures the connector's overhead on this machine, not AWS.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.scenarios import Context, Outcome

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = ROOT / "topologies" / "kinesis_orders.py"
KINESIS_MAX_RECORDS = int(os.environ.get("STREAM_ETL_BENCH_KINESIS_RECORDS", "200000"))
SHARDS = 4


def kinesis(context: Context) -> Outcome:
    from deltalake import DeltaTable

    from bench.checks import commit_history
    from bench.procs import run_measured
    from connectors.kinesis.admin import create_stream, kinesis_client, put_records
    from connectors.kinesis.local import Kinesalite
    from stream_etl.devstack import free_port
    from stream_etl.samples import order, orders

    stack, label = context.stack, "kinesis"
    records = min(context.records, KINESIS_MAX_RECORDS)
    stream = f"bench-{context.run_id}"
    app_id = f"bench-{label}-{context.run_id}"
    table_uri = f"s3://{stack.bucket}/bench-{context.run_id}/{label}"
    with Kinesalite(free_port(), log=context.logs / f"kinesalite-{context.run_id}.log") as local:
        client = kinesis_client(local.endpoint)
        try:
            create_stream(client, stream, SHARDS)
            started = time.perf_counter()
            put_records(client, stream, orders(records))
            put_s = time.perf_counter() - started
        finally:
            client.close()
        env = {
            **stack.child_environment(),
            "STREAM_ETL_KINESIS_ENDPOINT_URL": local.endpoint,
            "STREAM_ETL_KINESIS_ACCESS_KEY_ID": "local",
            "STREAM_ETL_KINESIS_SECRET_ACCESS_KEY": "local",
        }
        command = [
            sys.executable,
            "-m",
            "stream_etl",
            "run",
            str(TOPOLOGY),
            "--until-caught-up",
            "--json",
            "--app-id",
            app_id,
            "--arg",
            f"stream={stream}",
            "--arg",
            f"table={table_uri}",
            "--arg",
            f"leases={context.logs / f'kinesis-leases-{context.run_id}'}",
        ]
        out = context.logs / f"{label}-{context.run_id}.out"
        err = context.logs / f"{label}-{context.run_id}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            measured = run_measured(
                command, env=env, cwd=ROOT, stdout=stdout, stderr=stderr, timeout_s=context.args.timeout
            )
    if measured.returncode != 0:
        return Outcome(problems=[f"the Kinesis worker exited with {measured.returncode} (log: {err})"])
    table = DeltaTable(table_uri, storage_options=stack.settings.s3_storage_options())
    commits = commit_history(table.history())
    ids = table.to_pyarrow_dataset().to_table(columns=["id"])["id"]
    expected = sum(1 for i in range(records) if order(i)["amount"] >= 0)
    problems = []
    if len(ids) != expected or len(set(ids.to_pylist())) != expected:
        problems.append(
            f"the Kinesis table holds {len(ids)} rows ({len(set(ids.to_pylist()))} ids), expected {expected}"
        )
    total_s = commits.last_at - measured.launched_at if commits.last_at else None
    steady_s = commits.last_at - commits.first_at if commits.last_at and commits.first_at else None
    figures: dict[str, Any] = {
        "kinesis_rows_per_s": round(records / total_s, 1) if total_s else None,
        "kinesis_steady_rows_per_s": round((records - commits.first_records) / steady_s, 1) if steady_s else None,
        "kinesis_records": records,
        "kinesis_shards": SHARDS,
        "kinesis_put_records_per_s": round(records / put_s, 1),
        "kinesis_total_s": round(total_s, 3) if total_s else None,
        "kinesis_cpu_s": round(measured.cpu_s, 2),
        "kinesis_peak_rss_mb": round(measured.peak_rss_bytes / 2**20, 1),
        "kinesis_commits": commits.versions,
    }
    return Outcome(figures=figures, problems=problems)
