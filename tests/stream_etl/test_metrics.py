"""RunStats: records are counted once, by where their rows ended up."""

from __future__ import annotations

import re
import time

import pyarrow as pa

from stream_etl.metrics import RunStats, since_launch


def _ids(*values: int) -> pa.Array:
    return pa.array(values, pa.int32())


def test_account_counts_each_record_once_by_its_lineage() -> None:
    stats = RunStats()

    stats.account(
        records=10,
        nbytes=1000,
        written=[_ids(0, 1, 2), _ids(1, 2, 3)],  # two sinks, overlapping rows
        dead=_ids(3, 4, 4),  # 3 was also written by the other branch
        replayed=[_ids(5, 0)],  # 0 was written to another sink
    )

    assert stats.batches == 1
    assert stats.records_in == 10
    assert stats.bytes_in == 1000
    assert stats.written == 4
    assert stats.dead_lettered == 1
    assert stats.already_committed == 1
    assert stats.filtered == 4
    assert stats.records_in == stats.written + stats.filtered + stats.dead_lettered + stats.already_committed


def test_account_with_nothing_written_counts_every_record_as_filtered() -> None:
    stats = RunStats()

    stats.account(records=5, nbytes=50, written=[], dead=None, replayed=[])

    assert (stats.written, stats.dead_lettered, stats.already_committed, stats.filtered) == (0, 0, 0, 5)


def test_account_adds_up_over_batches() -> None:
    stats = RunStats()

    stats.account(records=3, nbytes=30, written=[_ids(0, 1)], dead=_ids(2), replayed=[])
    stats.account(records=4, nbytes=40, written=[_ids(0)], dead=None, replayed=[_ids(1, 2)])

    assert stats.batches == 2
    assert stats.records_in == 7
    assert stats.bytes_in == 70
    assert (stats.written, stats.dead_lettered, stats.already_committed, stats.filtered) == (3, 1, 2, 1)


def test_committed_records_the_first_and_last_commit() -> None:
    stats = RunStats()

    stats.committed()
    first = stats.first_commit_at
    stats.committed()

    assert stats.commits == 2
    assert first is not None
    assert stats.first_commit_at == first
    assert stats.last_commit_at is not None
    assert stats.last_commit_at >= first


def test_as_dict_reports_rates_and_hides_clock_readings() -> None:
    stats = RunStats(started_at=100.0, last_commit_at=102.0, records_in=500, decode_s=0.12345)

    data = stats.as_dict()

    assert data["elapsed_s"] == 2.0
    assert data["records_per_s"] == 250.0
    assert data["decode_s"] == 0.123
    assert not {"started_at", "first_commit_at", "last_commit_at"} & set(data)
    assert {"records_in", "written", "filtered", "dead_lettered", "already_committed", "conflicts"} <= set(data)


def test_since_launch_gives_this_process_age_cpu_and_memory() -> None:
    found = re.fullmatch(r"([\d.]+) s \(([\d.]+) CPU-s\) after launch, (\d+) MB resident", since_launch())
    assert found is not None
    assert 0 < float(found[1]) < time.monotonic() + 1
    assert float(found[2]) > 0
    assert int(found[3]) > 10
