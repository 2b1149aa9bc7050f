"""Two jobs (their own app ids and topics) append to ONE Delta table at the same time."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from deltalake import DeltaTable

from connectors.delta import txn_app_id
from connectors.kafka.admin import produce
from stream_etl.records import SourcePartition
from stream_etl.samples import orders
from tests.e2e.workers import assert_positions_only_advance, assert_same_orders, read_table, start_worker
from tests.services import Services


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("max_commit_retries", ["0", ""], ids=["no-delta-rs-retries", "delta-rs-default"])
def test_two_jobs_writing_one_table_both_land_exactly_once(
    services: Services,
    topic: Callable[..., str],
    table_uri: str,
    unique: str,
    tmp_path: Path,
    max_commit_retries: str,
) -> None:
    """With ``max_commit_retries=0`` every commit that meets the other job's is a
    CommitContention that the run loop retries on a fresh snapshot; with delta-rs's
    default the conflicts are rebased inside delta-rs. Either way no commit is lost."""
    per_job = 20_000
    jobs = {"a": (topic(partitions=2, suffix="-a"), 0), "b": (topic(partitions=2, suffix="-b"), per_job)}
    for name, start in jobs.values():
        produce(services.kafka_bootstrap, name, orders(per_job, start=start))
    workers = {
        job: start_worker(
            services,
            app_id=f"{unique}-{job}",
            args={
                "topic": name,
                "table": table_uri,
                "batch_records": "500",
                "max_commit_retries": max_commit_retries,
                # Direct: both jobs commit from the start (in group mode each would write its
                # whole backlog during its join and commit it once; no contention to test).
                "assignment": "direct",
            },
            log=tmp_path / f"{job}.log",
            until_caught_up=True,
        )
        for job, (name, _) in jobs.items()
    }
    summaries = {}
    for job, process in workers.items():
        code = process.wait(timeout=500)
        log = tmp_path / f"{job}.log"
        assert code == 0, f"job {job} exited {code}:\n{log.read_text()[-3000:]}"
        summaries[job] = json.loads(log.with_suffix(".out").read_text())

    assert_same_orders(read_table(table_uri, services), range(2 * per_job))
    delta = DeltaTable(table_uri, storage_options=services.storage_options())
    for job, (name, _) in jobs.items():
        stored = [delta.transaction_version(txn_app_id(f"{unique}-{job}", SourcePartition(name, p))) for p in range(2)]
        assert sum(v + 1 for v in stored if v is not None) == per_job, job
        assert assert_positions_only_advance(table_uri, services, f"{unique}-{job}") >= 2
    writers = [h.get("stream_etl.app_id") for h in reversed(delta.history())]
    assert {f"{unique}-a", f"{unique}-b"} <= set(writers)
    retries = {job: s["stats"]["retries"] for job, s in summaries.items()}
    print(f"commits {len(writers)}, sink retries per job {retries}")
