"""Scenario (e): one worker vs two. Two engine processes with one app id (one consumer group)
share the main topic's partitions; measured like the single worker, from the first launch
to the last commit, and verified the same way (every valid order exactly once).

On the 2-core reference machine two workers compete for the same cores as the broker and
S3, and the group join (both members, then a rebalance) is paid before the first record:
the figure shows what scale-out costs and gives on one machine, not across machines.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

from bench.scenarios import Context, Outcome

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = ROOT / "topologies" / "orders.py"
WORKERS = 2


def two_workers(context: Context) -> Outcome:
    from deltalake import DeltaTable

    from bench.checks import commit_history, verify_table
    from bench.procs import Measured, run_measured
    from connectors.delta.sink import txn_app_id
    from stream_etl.records import SourcePartition

    stack, produced, label = context.stack, context.produced, "workers"
    app_id = f"bench-{label}-{context.run_id}"
    table_uri = f"s3://{stack.bucket}/bench-{context.run_id}/{label}"
    command = [
        sys.executable,
        "-m",
        "stream_etl",
        "run",
        str(TOPOLOGY),
        "--until-caught-up",
        "--app-id",
        app_id,
        "--arg",
        f"topic={produced.topic}",
        "--arg",
        f"table={table_uri}",
        "--arg",
        "partition_by=",
    ]
    measured: list[Measured] = []
    errors: list[BaseException] = []

    def run(index: int) -> None:
        out = context.logs / f"{label}-{index}-{context.run_id}.out"
        err = context.logs / f"{label}-{index}-{context.run_id}.err"
        try:
            with out.open("wb") as stdout, err.open("wb") as stderr:
                measured.append(
                    run_measured(
                        command,
                        env=stack.child_environment(),
                        cwd=ROOT,
                        stdout=stdout,
                        stderr=stderr,
                        timeout_s=context.args.timeout,
                    )
                )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    problems = [f"a worker could not run: {e}" for e in errors]
    problems += [f"a worker exited with {m.returncode}" for m in measured if m.returncode != 0]
    if problems:
        return Outcome(problems=problems)

    table = DeltaTable(table_uri, storage_options=stack.settings.s3_storage_options())
    commits = commit_history(table.history())
    output = table.to_pyarrow_dataset().to_table(columns=["id", "amount_cents"])
    stored = {
        p: table.transaction_version(txn_app_id(app_id, SourcePartition(produced.topic, p))) for p in produced.ends
    }
    problems = verify_table(output, produced.expected, stored_positions=stored, ends=produced.ends)
    launched = min(m.launched_at for m in measured)
    records = produced.expected.records
    total_s = commits.last_at - launched if commits.last_at else None
    steady_s = commits.last_at - commits.first_at if commits.last_at and commits.first_at else None
    rate = round(records / total_s, 1) if total_s else None
    single = context.main_figures.get("e2e_rows_per_s")
    figures: dict[str, Any] = {
        "e2e_two_workers_rows_per_s": rate,
        "e2e_two_workers_steady_rows_per_s": round((records - commits.first_records) / steady_s, 1)
        if steady_s
        else None,
        "e2e_two_workers_first_commit_s": round(commits.first_at - launched, 3) if commits.first_at else None,
        "e2e_two_workers_cpu_s": round(sum(m.cpu_s for m in measured), 2),
        "e2e_two_workers_peak_rss_mb": round(max(m.peak_rss_bytes for m in measured) / 2**20, 1),
        "e2e_two_workers_vs_one": round(rate / single, 3) if rate and single else None,
        "e2e_two_workers_commits": commits.versions,
    }
    return Outcome(figures=figures, problems=problems)
