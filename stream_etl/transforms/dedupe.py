"""Dedupe: keep the first record of each key; later ones within the horizon are filtered.

Per source partition (records with one key must share a partition: key the topic by the
dedupe key, as Kafka producers do with message keys). The decision for a record depends
only on the records before it in its partition:

- without ``horizon``, a record is a duplicate when its key was kept before;
- with ``horizon`` (and ``time_column``), when its key was kept at an event time within
  ``horizon`` of the partition's watermark (the highest event time seen) at the moment the
  record arrives. Keys older than that can never match again and are evicted.

State is bounded by ``max_keys`` per partition: past it the oldest keys are evicted (then
the result depends on when eviction ran; size the horizon so it does not happen). Records
with a null key are passed through; with ``time_column``, a record without a usable event
time is dead-lettered.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from stream_etl.dead_letters import Failure
from stream_etl.errors import ConfigurationError
from stream_etl.records import LINEAGE
from stream_etl.transforms.stateful import BatchView, StatefulStep, by_partition

STATE_SCHEMA = pa.schema([("key", pa.string()), ("seen", pa.int64())])
_NO_WATERMARK = -(2**63)


def key_strings(table: pa.Table, columns: Sequence[str]) -> pa.Array:
    """One string per row identifying its key (null when any key column is null)."""
    parts = [pc.cast(table[c], pa.string()).combine_chunks() for c in columns]
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, "\x1f")


def event_micros(table: pa.Table, column: str) -> pa.Array:
    """Event times as int64 microseconds since the epoch, UTC (null where unusable).

    Timestamps (a zone-less one is read as UTC), ISO-8601 strings (``2026-01-01T00:00:00.5Z``,
    with or without a zone) and integers (already microseconds) are accepted.
    """
    values = table[column].combine_chunks()
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        values = _parse_iso(values)
    if pa.types.is_timestamp(values.type):
        return pc.cast(pc.cast(values, pa.timestamp("us", tz=values.type.tz)), pa.int64())
    if pa.types.is_integer(values.type):
        return pc.cast(values, pa.int64())
    msg = f"event time column {column!r} is {values.type}; use a timestamp, an ISO-8601 string or int64 microseconds"
    raise ConfigurationError(msg)


def _parse_iso(text: pa.Array) -> pa.Array:
    for target in (pa.timestamp("us", tz="UTC"), pa.timestamp("us")):
        try:
            return pc.cast(text, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    # Some values are not ISO-8601: parse one by one (only for such batches), bad ones -> null.
    parsed = []
    for value in text.to_pylist():
        try:
            stamp = datetime.fromisoformat(value.replace("Z", "+00:00")) if value is not None else None
        except ValueError:
            stamp = None
        if stamp is not None and stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        parsed.append(stamp)
    return pa.array(parsed, pa.timestamp("us", tz="UTC"))


def prefix_watermarks(times: pa.Array, start: int) -> tuple[pa.Array, int]:
    """For each record, the highest event time before it (at least ``start``); and the end one."""
    if len(times) == 0:
        return pa.array([], pa.int64()), start
    running = pc.max_element_wise(pc.cumulative_max(times), pa.scalar(start, pa.int64()))
    before = pa.concat_arrays([pa.array([start], pa.int64()), running.slice(0, len(running) - 1)])
    return before, int(running[-1].as_py())


class Dedupe(StatefulStep):
    """Drop records whose key was seen before (see the module docstring)."""

    kind = "dedupe"

    def __init__(
        self,
        keys: Sequence[str],
        *,
        time_column: str | None = None,
        horizon: timedelta | None = None,
        max_keys: int = 1_000_000,
    ) -> None:
        super().__init__()
        if not keys:
            msg = "dedupe needs at least one key column"
            raise ConfigurationError(msg)
        if horizon is not None and time_column is None:
            msg = "dedupe with a horizon needs time_column (the horizon is in event time)"
            raise ConfigurationError(msg)
        self.keys, self.time_column, self.max_keys = list(keys), time_column, max_keys
        self.horizon_us = int(horizon.total_seconds() * 1_000_000) if horizon is not None else None
        self._states: dict[int, tuple[pa.Table, int]] = {}

    def describe(self) -> str:
        horizon = f" within {self.horizon_us / 1e6:g}s" if self.horizon_us is not None else ""
        return f"dedupe on {', '.join(self.keys)}{horizon}"

    # state ------------------------------------------------------------------------

    def state(self, pid: int) -> pa.Table:
        table, watermark = self._states.get(pid, (STATE_SCHEMA.empty_table(), _NO_WATERMARK))
        return table.replace_schema_metadata({"watermark": str(watermark)})

    def restore(self, pid: int, state: pa.Table | None) -> None:
        if state is None:
            self._states.pop(pid, None)
            return
        watermark = int((state.schema.metadata or {}).get(b"watermark", _NO_WATERMARK))
        self._states[pid] = (state.replace_schema_metadata(None), watermark)

    def forget(self, pid: int) -> None:
        self._states.pop(pid, None)

    # processing ---------------------------------------------------------------------

    def process(self, table: pa.Table, view: BatchView, failures: list[Failure]) -> pa.Table | None:
        missing = [
            c for c in [*self.keys, *([self.time_column] if self.time_column else [])] if c not in table.column_names
        ]
        if missing:
            msg = f"dedupe {self.name!r}: no column(s) {missing} in the batch"
            raise ConfigurationError(msg)
        if table.num_rows == 0:
            return table
        kept = [self._partition(pid, part, failures) for pid, part in by_partition(table, view)]
        kept_tables = [k for k in kept if k.num_rows]
        return pa.concat_tables(kept_tables).drop_columns(["__position"]) if kept_tables else table.slice(0, 0)

    def _partition(self, pid: int, part: pa.Table, failures: list[Failure]) -> pa.Table:
        state, watermark = self._states.get(pid, (STATE_SCHEMA.empty_table(), _NO_WATERMARK))
        if self.time_column is not None:
            times = event_micros(part, self.time_column)
            unusable = pc.is_null(times)
            if pc.any(unusable).as_py():
                bad = part.filter(unusable)[LINEAGE].to_pylist()
                failures.extend(
                    Failure(row, self.name, "ValueError", f"no usable event time in {self.time_column!r}")
                    for row in bad
                )
                part, times = part.filter(pc.invert(unusable)), times.filter(pc.invert(unusable))
            marks, end_watermark = prefix_watermarks(times, watermark)
            seen_at = times
        else:
            marks, end_watermark = None, watermark
            seen_at = part["__position"].combine_chunks()
        keys = key_strings(part, self.keys)
        keep, new_state = self._decide(keys, seen_at, marks, state)
        if self.horizon_us is not None:
            new_state = new_state.filter(pc.greater_equal(new_state["seen"], end_watermark - self.horizon_us))
        if new_state.num_rows > self.max_keys:
            new_state = new_state.sort_by([("seen", "descending")]).slice(0, self.max_keys)
        self._states[pid] = (new_state, end_watermark)
        return part.filter(keep)

    def _decide(
        self, keys: pa.Array, seen_at: pa.Array, marks: pa.Array | None, state: pa.Table
    ) -> tuple[pa.Array, pa.Table]:
        """Which rows to keep, and the state after them."""
        n = len(keys)
        indices = pa.array(range(n), pa.int64())
        frame = pa.table({"key": keys, "i": indices})
        counts = frame.filter(pc.is_valid(keys)).group_by("key").aggregate([("i", "count")])
        repeated = counts.filter(pc.greater(counts["i_count"], 1))["key"]
        known = state["key"]
        simple = pc.and_(
            pc.is_valid(keys), pc.invert(pc.or_(pc.is_in(keys, value_set=known), pc.is_in(keys, value_set=repeated)))
        )
        keep = pc.or_(pc.is_null(keys), simple)  # null keys and keys new in this batch, once
        additions = [pa.table({"key": keys.filter(simple), "seen": seen_at.filter(simple)})]
        candidates = pc.and_(pc.is_valid(keys), pc.invert(simple))
        if pc.any(candidates).as_py():
            keep, updated = self._sequential(keys, seen_at, marks, state, candidates, keep)
            additions.append(updated)
            state = state.filter(pc.invert(pc.is_in(state["key"], value_set=updated["key"])))
        return keep, pa.concat_tables([state, *additions]).cast(STATE_SCHEMA)

    def _sequential(
        self,
        keys: pa.Array,
        seen_at: pa.Array,
        marks: pa.Array | None,
        state: pa.Table,
        candidates: pa.Array,
        keep: pa.Array,
    ) -> tuple[pa.Array, pa.Table]:
        """Keys already known or repeated in the batch, record by record (few, in practice)."""
        rows = pc.indices_nonzero(candidates).to_pylist()
        row_keys = keys.take(rows).to_pylist()
        row_seen = seen_at.take(rows).to_pylist()
        row_marks = marks.take(rows).to_pylist() if marks is not None else [None] * len(rows)
        wanted = pa.array(sorted(set(row_keys)), pa.string())
        known = state.filter(pc.is_in(state["key"], value_set=wanted))
        first: dict[str, int] = dict(zip(known["key"].to_pylist(), known["seen"].to_pylist(), strict=True))
        kept_rows = []
        for row, key, seen, mark in zip(rows, row_keys, row_seen, row_marks, strict=True):
            previous = first.get(key)
            expired = previous is not None and self.horizon_us is not None and previous < mark - self.horizon_us
            if previous is None or expired:
                first[key] = seen
                kept_rows.append(row)
        mask = pc.is_in(pa.array(range(len(keys)), pa.int64()), value_set=pa.array(kept_rows, pa.int64()))
        updated = pa.table(
            {"key": pa.array(list(first), pa.string()), "seen": pa.array(list(first.values()), pa.int64())}
        )
        return pc.or_(keep, mask), updated
