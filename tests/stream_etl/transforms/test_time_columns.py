"""ingestion_time and date_partitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
import pytest

from stream_etl.errors import ConfigurationError
from stream_etl.records import LINEAGE
from stream_etl.transforms import DatePartitions, IngestionTime
from tests.stream_etl.transforms.helpers import assert_table, lineage, run, table

NOW = datetime(2026, 11, 21, 8, 30, 15, 123456, tzinfo=UTC)


def test_ingestion_time_stamps_every_row_of_the_batch_with_one_utc_time() -> None:
    clock = lambda: NOW.astimezone(timezone(timedelta(hours=2)))  # noqa: E731
    out, _ = run(IngestionTime("seen_at", clock=clock), table({"id": [1, 2]}))

    stamp = pa.array([NOW, NOW], pa.timestamp("us", tz="UTC"))
    assert_table(out, table({"id": [1, 2]}).append_column("seen_at", stamp))


def test_ingestion_time_of_an_empty_batch_and_a_naive_clock() -> None:
    out, _ = run(IngestionTime(clock=lambda: NOW), table({"id": pa.array([], pa.int64())}))
    assert out is not None and out.schema.field("ingested_at").type == pa.timestamp("us", tz="UTC")
    with pytest.raises(ConfigurationError, match="aware"):
        run(IngestionTime(clock=lambda: datetime(2026, 1, 1)), table({"id": [1]}))  # noqa: DTZ001


def test_date_partitions_from_a_timestamp_column_with_nulls() -> None:
    ts = pa.array([datetime(2026, 1, 2, 3, 4), None, datetime(1999, 12, 31, 23, 59)], pa.timestamp("ms"))  # noqa: DTZ001 - a naive timestamp column

    out, _ = run(DatePartitions("ts", parts=["year", "month", "day", "hour"]), table({"ts": ts}))

    expected = table({"ts": ts})
    for name, values in {
        "year": [2026, None, 1999],
        "month": [1, None, 12],
        "day": [2, None, 31],
        "hour": [3, None, 23],
    }.items():
        expected = expected.append_column(name, pa.array(values, pa.int32()))
    assert_table(out, expected)


def test_date_partitions_from_iso_text_in_utc_with_a_prefix_and_bad_text_dead_lettered() -> None:
    text = ["2026-03-04T05:06:07Z", "2026-03-04T23:30:00-02:00", "garbage", "2026-12-31T00:00:00+00:00"]
    out, failures = run(DatePartitions("ts", prefix="p_"), table({"ts": text}), "partitions")

    assert [(f.row, f.step) for f in failures] == [(2, "partitions")]
    expected = pa.table(
        {
            "ts": pa.array([text[0], text[1], text[3]]),
            LINEAGE: lineage(0, 1, 3),
            "p_year": pa.array([2026, 2026, 2026], pa.int32()),
            "p_month": pa.array([3, 3, 12], pa.int32()),
            "p_day": pa.array([4, 5, 31], pa.int32()),
        }
    )
    assert_table(out, expected)


def test_date_partitions_refuses_unknown_parts_and_non_time_columns() -> None:
    with pytest.raises(ConfigurationError):
        DatePartitions("ts", parts=["week"])
    with pytest.raises(ConfigurationError, match="not a timestamp"):
        run(DatePartitions("ts"), table({"ts": [1]}))
