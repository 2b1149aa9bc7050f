"""Scenario: Kafka -> Postgres upsert, recording ``postgres_rows_per_s``.

Runs topologies/orders_postgres.py (COPY into a staging table, upsert on ``id``, the
offsets in ``stream_etl_positions`` in the same transaction) over the topic the main
comparison produced, in a fresh process, until caught up. The rate is the records read
divided by the time from the process launch to the last commit (the newest
``updated_at`` of the job's positions). Verified: one row per valid order, the id and
amount checksums of the produced bytes, the stored positions covering every record.
The database is ``STREAM_ETL_POSTGRES_DSN`` or the machine's Postgres (db ``test``);
the table is dropped afterwards.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bench.scenarios import Context, Outcome

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = ROOT / "topologies" / "orders_postgres.py"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def postgres(context: Context) -> Outcome:
    import psycopg

    from bench.procs import run_measured
    from bench.run import parse_engine_summary

    stack, produced = context.stack, context.produced
    dsn = stack.environment.get("STREAM_ETL_POSTGRES_DSN") or DEFAULT_DSN
    app_id = f"bench-postgres-{context.run_id}"
    table = f"bench_{context.run_id.replace('-', '_')}"
    command = [sys.executable, "-m", "stream_etl", "run", str(TOPOLOGY), "--until-caught-up", "--json"]
    command += ["--app-id", app_id, "--arg", f"topic={produced.topic}", "--arg", f"table={table}"]
    command += ["--arg", f"dsn={dsn}", "--arg", "mode=upsert"]
    out_path, err_path = (
        context.logs / f"postgres-{context.run_id}.out",
        context.logs / f"postgres-{context.run_id}.err",
    )
    timeout = getattr(context.args, "timeout", 900.0)
    with out_path.open("wb") as out, err_path.open("wb") as err:
        measured = run_measured(
            command, env=stack.child_environment(), cwd=ROOT, stdout=out, stderr=err, timeout_s=timeout
        )
    if measured.returncode != 0:
        return Outcome(problems=[f"the engine failed (exit {measured.returncode}): {err_path.read_text()[-2000:]}"])
    summary = parse_engine_summary(out_path.read_text())
    try:
        with psycopg.connect(dsn) as conn:
            rows, id_sum, cents_sum = conn.execute(
                f'SELECT count(*), coalesce(sum(id), 0), coalesce(sum(amount_cents), 0) FROM "{table}"'  # noqa: S608
            ).fetchone() or (0, 0, 0)
            covered, last_commit = conn.execute(
                "SELECT coalesce(sum(position + 1), 0), extract(epoch FROM max(updated_at))"
                " FROM stream_etl_positions WHERE app_id = %s",
                (app_id,),
            ).fetchone() or (0, None)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{table}", "{table}_dead_letters"')
            conn.execute("DELETE FROM stream_etl_positions WHERE app_id = %s", (app_id,))
    expected = produced.expected
    problems = [
        f"{what}: got {got}, expected {want}"
        for what, got, want in (
            ("rows", rows, expected.rows),
            ("sum of ids", int(id_sum), expected.id_sum),
            ("sum of amount_cents", int(cents_sum), expected.amount_cents_sum),
            ("records covered by stored positions", int(covered), expected.records),
        )
        if got != want
    ]
    total_s = float(last_commit) - measured.launched_at if last_commit is not None else None
    stats: dict[str, Any] = summary.get("stats", {})
    figures = {
        "postgres_rows_per_s": round(expected.records / total_s, 1) if total_s else None,
        "postgres_exit_rows_per_s": round(expected.records / measured.wall_s, 1),
        "postgres_total_s": round(total_s, 3) if total_s else None,
        "postgres_cpu_s": round(measured.cpu_s, 2),
        "postgres_peak_rss_mb": round(measured.peak_rss_bytes / 2**20, 1),
        "postgres_commit_s": stats.get("commit_s"),
    }
    return Outcome(figures=figures, problems=problems)
