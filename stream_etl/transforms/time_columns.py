"""Time columns: when a batch was ingested, and date-partition columns from a timestamp."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from stream_etl.errors import ConfigurationError
from stream_etl.records import LINEAGE
from stream_etl.transforms.base import Step

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class IngestionTime(Step):
    """Add ``column``: the time the batch went through this step (timestamp[us, UTC]).

    One value per batch: every row of a batch gets the same time. A replay after a
    crash stamps the replayed rows again, with the replay's time.
    """

    kind = "ingestion_time"

    def __init__(self, column: str = "ingested_at", *, clock: Clock = _utc_now) -> None:
        super().__init__()
        if column == LINEAGE:
            msg = f"{LINEAGE!r} is reserved"
            raise ConfigurationError(msg)
        self.column, self.clock = column, clock

    def apply(self, table: pa.Table) -> pa.Table:
        now = self.clock()
        if now.tzinfo is None:
            msg = "the ingestion_time clock must return an aware datetime"
            raise ConfigurationError(msg)
        values = pa.repeat(pa.scalar(now.astimezone(UTC), pa.timestamp("us", tz="UTC")), table.num_rows)
        if self.column in table.column_names:
            return table.set_column(table.schema.get_field_index(self.column), self.column, values)
        return table.append_column(self.column, values)

    def describe(self) -> str:
        return f"ingestion_time as {self.column}"


_PARTS = {"year": pc.year, "month": pc.month, "day": pc.day, "hour": pc.hour}


class DatePartitions(Step):
    """Add ``year``, ``month``, ``day`` (and ``hour``) int32 columns from timestamp ``column``.

    ``column`` may be a timestamp (a zone-aware one is split in its own zone, a naive one
    as it is) or ISO-8601 text (parsed; a value that does not parse fails its row, which is
    dead-lettered). A null time gives null parts. ``prefix`` is put before each name
    (``prefix="event_"`` -> ``event_year``). Use them as ``DeltaSink(partition_by=[...])``.
    """

    kind = "date_partitions"

    def __init__(self, column: str, *, parts: Sequence[str] = ("year", "month", "day"), prefix: str = "") -> None:
        super().__init__()
        unknown = [p for p in parts if p not in _PARTS]
        if unknown or not parts:
            msg = f"date_partitions parts {list(parts)}: choose among {list(_PARTS)}"
            raise ConfigurationError(msg)
        self.column, self.parts, self.prefix = column, list(parts), prefix

    def apply(self, table: pa.Table) -> pa.Table:
        if self.column in table.column_names:
            times = table[self.column]
        elif not self.strict_columns:  # an optional field absent from this batch
            times = pa.chunked_array([pa.nulls(table.num_rows)])
        else:
            have = [c for c in table.column_names if c != LINEAGE]
            msg = f"no column {self.column!r} in the batch; columns are {have}"
            raise self.mismatch(msg)
        if pa.types.is_string(times.type) or pa.types.is_large_string(times.type):
            times = _parse(times)
        elif pa.types.is_null(times.type):
            times = times.cast(pa.timestamp("us"))
        elif not (pa.types.is_timestamp(times.type) or pa.types.is_date(times.type)):
            msg = f"column {self.column!r} is {times.type}, not a timestamp or ISO-8601 text"
            raise self.mismatch(msg)
        for part in self.parts:
            values = _PARTS[part](times).cast(pa.int32())
            name = self.prefix + part
            if name in table.column_names:
                table = table.set_column(table.schema.get_field_index(name), name, values)
            else:
                table = table.append_column(name, values)
        return table

    def describe(self) -> str:
        return f"date_partitions {', '.join(self.prefix + p for p in self.parts)} from {self.column}"


def _parse(text: pa.ChunkedArray) -> pa.ChunkedArray:
    """ISO-8601 text as timestamps: with a zone (converted to UTC) or without (naive)."""
    try:
        return text.cast(pa.timestamp("us", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return text.cast(pa.timestamp("us"))
