"""Scenario (d): wide records, ~2 KB and 50 columns each, Kafka -> topologies/wide_events.py
-> Delta, one worker, measured from process start to the last commit like the main scenario
and verified (every id once). Figures in rows/s and MB/s of JSON input."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.scenarios import Context, Outcome

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = ROOT / "topologies" / "wide_events.py"
RECORDS = 100_000


def wide_records(context: Context) -> Outcome:
    import orjson
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    from bench.checks import commit_history
    from bench.procs import run_measured
    from connectors.kafka.admin import ensure_topic, produce
    from stream_etl.samples import wide

    stack, label = context.stack, "wide"
    records = min(RECORDS, context.records)
    topic, app_id = f"wide-{context.run_id}", f"bench-{label}-{context.run_id}"
    table_uri = f"s3://{stack.bucket}/bench-{context.run_id}/{label}"
    values = [orjson.dumps(wide(i)) for i in range(records)]
    megabytes = sum(map(len, values)) / 2**20
    ensure_topic(stack.kafka_bootstrap, topic, partitions=4)
    produce(stack.kafka_bootstrap, topic, values, options=stack.settings.kafka_config())
    del values
    command = [sys.executable, "-m", "stream_etl", "run", str(TOPOLOGY), "--until-caught-up", "--app-id", app_id]
    command += ["--arg", f"topic={topic}", "--arg", f"table={table_uri}"]
    out, err = context.logs / f"{label}-{context.run_id}.out", context.logs / f"{label}-{context.run_id}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        measured = run_measured(
            command,
            env=stack.child_environment(),
            cwd=ROOT,
            stdout=stdout,
            stderr=stderr,
            timeout_s=context.args.timeout,
        )
    if measured.returncode != 0:
        return Outcome(problems=[f"the engine exited with {measured.returncode}: {err.read_text()[-1500:]}"])
    table = DeltaTable(table_uri, storage_options=stack.settings.s3_storage_options())
    commits = commit_history(table.history())
    ids = table.to_pyarrow_dataset().to_table(columns=["id"])["id"]
    problems = []
    if len(ids) != records or pc.count_distinct(ids).as_py() != records:
        problems.append(
            f"the wide table holds {len(ids):,} rows ({pc.count_distinct(ids).as_py():,} ids), expected {records:,}"
        )
    total_s = commits.last_at - measured.launched_at if commits.last_at else None
    figures = {
        "wide_records": records,
        "wide_record_bytes_avg": round(megabytes * 2**20 / records, 1),
        "wide_rows_per_s": round(records / total_s, 1) if total_s else None,
        "wide_mb_per_s": round(megabytes / total_s, 1) if total_s else None,
        "wide_peak_rss_mb": round(measured.peak_rss_bytes / 2**20, 1),
        "wide_cpu_s": round(measured.cpu_s, 2),
    }
    return Outcome(figures=figures, problems=problems)
