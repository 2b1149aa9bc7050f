"""dead_letter_table: failures become rows with the raw bytes, the step, the error and the position."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from stream_etl.batcher import Batcher, BatchLimits
from stream_etl.dead_letters import DEAD_LETTER_SCHEMA, Failure, dead_letter_table, failures_for_rows
from stream_etl.records import LINEAGE, Batch, Chunk, PartitionRegistry, SourcePartition

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _batch(registry: PartitionRegistry) -> Batch:
    """Rows 0-2 from orders-0 at positions 40-42, rows 3-4 from orders-7 at 9-10."""
    p0, p7 = registry.ids_of([SourcePartition("orders", 0), SourcePartition("orders", 7)])
    batcher = Batcher(BatchLimits(max_batch_latency=timedelta(hours=1)))
    batcher.add(
        Chunk(
            values=[b'{"id": 1}', b"oops", None, b'{"id": 4}', b"[]"],
            pids=[p0, p0, p0, p7, p7],
            positions=[40, 41, 42, 9, 10],
            nbytes=20,
        )
    )
    return batcher.close(generation=0)


def test_failures_become_rows_with_raw_bytes_step_error_and_position() -> None:
    registry = PartitionRegistry()
    failures = [
        Failure(1, "decode", "DecodeError", "invalid JSON"),
        Failure(2, "decode", "DecodeError", "value is null"),
        Failure(4, "valid", "ValueError", "bad"),
    ]

    table = dead_letter_table(_batch(registry), failures, registry, app_id="job", now=NOW)

    assert table.schema == DEAD_LETTER_SCHEMA.append(pa.field(LINEAGE, pa.int32()))
    assert table.drop_columns([LINEAGE]).to_pylist() == [
        {
            "app_id": "job",
            "step": "decode",
            "error_class": "DecodeError",
            "error": "invalid JSON",
            "topic": "orders",
            "partition": "0",
            "offset": 41,
            "raw": b"oops",
            "dead_lettered_at": NOW,
        },
        {
            "app_id": "job",
            "step": "decode",
            "error_class": "DecodeError",
            "error": "value is null",
            "topic": "orders",
            "partition": "0",
            "offset": 42,
            "raw": None,
            "dead_lettered_at": NOW,
        },
        {
            "app_id": "job",
            "step": "valid",
            "error_class": "ValueError",
            "error": "bad",
            "topic": "orders",
            "partition": "7",
            "offset": 10,
            "raw": b"[]",
            "dead_lettered_at": NOW,
        },
    ]
    assert table[LINEAGE].to_pylist() == [1, 2, 4]


def test_a_record_that_failed_in_several_branches_is_kept_once_with_its_first_failure() -> None:
    registry = PartitionRegistry()
    failures = [
        Failure(3, "left", "ValueError", "first"),
        Failure(0, "left", "E", "x"),
        Failure(3, "right", "E", "second"),
    ]

    table = dead_letter_table(_batch(registry), failures, registry, app_id="job", now=NOW)

    assert table[LINEAGE].to_pylist() == [3, 0]
    assert table["step"].to_pylist() == ["left", "left"]
    assert table["error"].to_pylist() == ["first", "x"]


def test_the_time_defaults_to_now_in_utc() -> None:
    registry = PartitionRegistry()
    before = datetime.now(UTC)

    table = dead_letter_table(_batch(registry), [Failure(0, "s", "E", "m")], registry, app_id="job")

    stamp = table["dead_lettered_at"][0].as_py()
    assert stamp.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= stamp <= datetime.now(UTC) + timedelta(seconds=1)


def test_failure_of_an_exception_takes_its_class_and_message() -> None:
    assert Failure.of(5, "cast_1", ValueError("no")) == Failure(5, "cast_1", "ValueError", "no")
    assert Failure.of(5, "cast_1", ValueError()) == Failure(5, "cast_1", "ValueError", "ValueError()")


def test_failures_for_rows_share_one_error() -> None:
    error = KeyError("amount")

    assert failures_for_rows([2, 4], "enrich", error) == [
        Failure(2, "enrich", "KeyError", "'amount'"),
        Failure(4, "enrich", "KeyError", "'amount'"),
    ]
