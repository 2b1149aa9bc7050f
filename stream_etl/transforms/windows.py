"""Window aggregates on event time: tumbling or sliding, with a watermark and allowed lateness.

Per source partition, the watermark is the highest event time seen. A window
``[start, start + size)`` closes when the watermark reaches ``start + size +
allowed_lateness``: it is then emitted once, as one row per group, and forgotten. A record
whose window had already closed when it arrived is late: dead-lettered (``late=
"dead_letter"``, the default) or dropped and counted as filtered (``late="drop"``).

Everything is decided from the order of the partition's records: lateness against the
watermark just before each record, and each emitted row is attributed to the first record
that moved the watermark past the window's close (its position is the row's position).
Sums and means add a window's values once, in the order of the records, when it closes
(floating-point addition depends on the order: adding per batch would make the last digits
depend on where batches started). So a run killed and restarted at any point emits the
same rows, to the last bit, as an uninterrupted one (see :mod:`stream_etl.state`). Results are per partition: key the topic by the grouping
columns for one row per group and window, or aggregate the rows again downstream.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from stream_etl.dead_letters import Failure
from stream_etl.errors import ConfigurationError
from stream_etl.records import LINEAGE
from stream_etl.transforms.dedupe import event_micros, prefix_watermarks
from stream_etl.transforms.stateful import BatchView, StatefulStep, by_partition

Aggregate = Literal["count", "sum", "min", "max", "mean"]
_NO_WATERMARK = -(2**63)
_START = "window_start"


def _micros(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1_000_000)


class Window(StatefulStep):
    """Aggregate records into event-time windows (see the module docstring).

    ``aggregates`` maps output columns to ``(input column, function)``; the functions are
    count, sum, min, max and mean; ``("*", "count")`` counts records.
    """

    kind = "window"

    def __init__(
        self,
        time_column: str,
        size: timedelta,
        *,
        aggregates: Mapping[str, tuple[str, Aggregate]],
        group_by: Sequence[str] = (),
        slide: timedelta | None = None,
        allowed_lateness: timedelta = timedelta(0),
        late: Literal["dead_letter", "drop"] = "dead_letter",
    ) -> None:
        super().__init__()
        self.size, self.slide = _micros(size), _micros(slide or size)
        self.lateness = _micros(allowed_lateness)
        if self.size <= 0 or self.slide <= 0 or self.size % self.slide:
            msg = "window size and slide must be positive and the size a multiple of the slide"
            raise ConfigurationError(msg)
        if not aggregates:
            msg = "a window needs at least one aggregate, e.g. {'n': ('*', 'count')}"
            raise ConfigurationError(msg)
        for out, (column, fn) in aggregates.items():
            if fn not in ("count", "sum", "min", "max", "mean") or (column == "*" and fn != "count"):
                msg = f"aggregate {out!r}: {fn}({column}) is not supported; use count, sum, min, max or mean"
                raise ConfigurationError(msg)
        if late not in ("dead_letter", "drop"):
            msg = f"late must be 'dead_letter' or 'drop', got {late!r}"
            raise ConfigurationError(msg)
        self.time_column, self.group_by = time_column, list(group_by)
        self.aggregates = dict(aggregates)
        self.late = late
        self._states: dict[int, tuple[pa.Table | None, pa.Table | None, int]] = {}

    def describe(self) -> str:
        kind = "tumbling" if self.slide == self.size else f"sliding every {self.slide / 1e6:g}s"
        return f"window {self.size / 1e6:g}s {kind} on {self.time_column} by {self.group_by or 'nothing'}"

    # state ------------------------------------------------------------------------
    # Per partition: ``partials`` (one row per open window and group: counts, min, max),
    # ``values`` (one row per record of an open window, for sums and means) and the
    # watermark. A snapshot stacks the two tables with a ``__part`` column.

    def state(self, pid: int) -> pa.Table:
        partials, values, watermark = self._states.get(pid, (None, None, _NO_WATERMARK))
        parts = [
            t.append_column("__part", pa.repeat(pa.scalar(k), t.num_rows))
            for k, t in (("w", partials), ("v", values))
            if t is not None
        ]
        table = (
            pa.concat_tables(parts, promote_options="permissive")
            if parts
            else pa.table({"__part": pa.array([], pa.string())})
        )
        return table.replace_schema_metadata({"watermark": str(watermark)})

    def restore(self, pid: int, state: pa.Table | None) -> None:
        if state is None:
            self._states.pop(pid, None)
            return
        watermark = int((state.schema.metadata or {}).get(b"watermark", _NO_WATERMARK))
        state = state.replace_schema_metadata(None)

        def part(kind: str, prefix: str) -> pa.Table | None:
            rows = state.filter(pc.equal(state["__part"], kind))
            keep = [c for c in rows.column_names if c in (*self.group_by, _START) or c.startswith(prefix)]
            return rows.select(keep) if rows.num_rows else None

        self._states[pid] = (part("w", "p_"), part("v", "v_"), watermark)

    def forget(self, pid: int) -> None:
        self._states.pop(pid, None)

    # processing ---------------------------------------------------------------------

    def process(self, table: pa.Table, view: BatchView, failures: list[Failure]) -> pa.Table | None:
        needed = [self.time_column, *self.group_by, *(c for c, _ in self.aggregates.values() if c != "*")]
        missing = [c for c in needed if c not in table.column_names]
        if missing:
            msg = f"window {self.name!r}: no column(s) {missing} in the batch"
            raise ConfigurationError(msg)
        outputs = (
            [self._partition(pid, part, failures) for pid, part in by_partition(table, view)] if table.num_rows else []
        )
        outputs = [o for o in outputs if o is not None and o.num_rows]
        return pa.concat_tables(outputs, promote_options="permissive") if outputs else None

    def _partition(self, pid: int, part: pa.Table, failures: list[Failure]) -> pa.Table | None:
        partials, values, watermark = self._states.get(pid, (None, None, _NO_WATERMARK))
        times = event_micros(part, self.time_column)
        usable = pc.is_valid(times)
        if not pc.all(usable).as_py():
            for row in part.filter(pc.invert(usable))[LINEAGE].to_pylist():
                failures.append(Failure(row, self.name, "ValueError", f"no usable event time in {self.time_column!r}"))
            part, times = part.filter(usable), times.filter(usable)
        marks, end_watermark = prefix_watermarks(times, watermark)
        pairs = self._pairs(times, marks)
        on_time = pairs.filter(pc.invert(pairs["late"]))
        late_rows = pc.is_in(pa.array(range(part.num_rows), pa.int64()), value_set=on_time["row"])
        late = part.filter(pc.invert(late_rows))
        if late.num_rows and self.late == "dead_letter":
            failures.extend(
                Failure(
                    row, self.name, "LateEvent", "its window had already closed (watermark past end + allowed lateness)"
                )
                for row in late[LINEAGE].to_pylist()
            )
        partials = self._merge(partials, self._partials(part, on_time))
        values = _stack(values, self._values(part, on_time))
        if partials is None:
            self._states[pid] = (None, values, end_watermark)
            return None
        closing = pc.less_equal(pc.add(partials[_START], self.size + self.lateness), end_watermark)
        closed = partials.filter(closing)
        closed_values = open_values = values
        if values is not None:  # closing depends on the window start only
            done = pc.less_equal(pc.add(values[_START], self.size + self.lateness), end_watermark)
            closed_values, open_values = values.filter(done), values.filter(pc.invert(done))
        self._states[pid] = (partials.filter(pc.invert(closing)), open_values, end_watermark)
        if closed.num_rows == 0:
            return None
        return self._emit(closed, closed_values, part, times, watermark)

    def _pairs(self, times: pa.Array, marks: pa.Array) -> pa.Table:
        """(row, window start, late) for every window each record falls in."""
        base = pc.multiply(pc.divide(times, self.slide), self.slide)  # floor for times >= 0
        rows = pa.array(range(len(times)), pa.int64())
        parts = []
        for j in range(self.size // self.slide):
            start = pc.subtract(base, j * self.slide)
            close = pc.add(start, self.size + self.lateness)
            parts.append(pa.table({"row": rows, _START: start, "late": pc.less_equal(close, marks)}))
        return pa.concat_tables(parts)

    def _partials(self, part: pa.Table, pairs: pa.Table) -> pa.Table | None:
        """Per window and group: record count, and counts, minimums, maximums of the inputs."""
        if pairs.num_rows == 0:
            return None
        rows = pairs["row"]
        columns: dict[str, pa.Array] = {_START: pairs[_START], "in___rows": rows}
        for name in self.group_by:
            columns[name] = part[name].take(rows)
        aggregations = [("in___rows", "count")]
        for out, (column, fn) in self.aggregates.items():
            if fn in ("count", "min", "max"):
                columns[f"in_{out}"] = part[column].take(rows) if column != "*" else rows
                aggregations.append((f"in_{out}", fn))
        grouped = pa.table(columns).group_by([*self.group_by, _START], use_threads=False).aggregate(aggregations)
        return grouped.rename_columns([f"p_{c[3:]}" if c.startswith("in_") else c for c in grouped.column_names])

    def _values(self, part: pa.Table, pairs: pa.Table) -> pa.Table | None:
        """Per record of a window: its position and the inputs of sums and means."""
        summed = {out: column for out, (column, fn) in self.aggregates.items() if fn in ("sum", "mean")}
        if not summed or pairs.num_rows == 0:
            return None
        rows = pairs["row"]
        columns: dict[str, pa.Array] = {name: part[name].take(rows) for name in self.group_by}
        columns[_START] = pairs[_START]
        columns["v___position"] = part["__position"].take(rows)
        for out, column in summed.items():
            columns[f"v_{out}"] = part[column].take(rows)
        return pa.table(columns)

    def _merge(self, state: pa.Table | None, batch: pa.Table | None) -> pa.Table | None:
        tables = [t for t in (state, batch) if t is not None and t.num_rows]
        if not tables:
            return None
        if len(tables) == 1:
            return tables[0]
        combined = pa.concat_tables(tables, promote_options="permissive")
        partials = [c for c in combined.column_names if c.startswith("p_")]
        how = {"count": "sum", "min": "min", "max": "max"}
        merged = combined.group_by([*self.group_by, _START], use_threads=False).aggregate(
            [(c, how[c.rsplit("_", 1)[1]]) for c in partials]
        )
        return merged.rename_columns(
            [c.rsplit("_", 1)[0] if c.rsplit("_", 1)[0] in partials else c for c in merged.column_names]
        )

    def _emit(
        self, closed: pa.Table, values: pa.Table | None, part: pa.Table, times: pa.Array, watermark: int
    ) -> pa.Table:
        """Finalize closed windows; each row's lineage is the record that closed its window."""
        order = [(k, "ascending") for k in [*self.group_by, _START]]
        closed = closed.sort_by(order)
        if values is not None and values.num_rows:
            summed = [c for c in values.column_names if c.startswith("v_") and c != "v___position"]
            ordered = values.sort_by([*order, ("v___position", "ascending")])
            # one thread, rows in record order: every addition happens in the same order every time
            totals = ordered.group_by([k for k, _ in order], use_threads=False).aggregate(
                [(c, f) for c in summed for f in ("sum", "count")]
            )
            # one row per closed window in both, sorted alike: side by side (a join drops null keys)
            totals = totals.sort_by(order)
            for column in totals.column_names:
                if column.startswith("v_"):
                    closed = closed.append_column(column, totals[column])
        running = pc.max_element_wise(pc.cumulative_max(times), pa.scalar(watermark, pa.int64())).to_pylist()
        closes = pc.add(closed[_START], self.size + self.lateness).to_pylist()
        triggers = [bisect.bisect_left(running, close) for close in closes]
        lineage = part[LINEAGE].combine_chunks().take(pa.array(triggers, pa.int64()))
        stamp = pa.timestamp("us", tz="UTC")
        columns: dict[str, pa.Array | pa.ChunkedArray] = {name: closed[name] for name in self.group_by}
        columns[_START] = pc.cast(closed[_START], stamp)
        columns["window_end"] = pc.cast(pc.add(closed[_START], self.size), stamp)
        for out, (_, fn) in self.aggregates.items():
            if fn == "mean":
                total = pc.cast(closed[f"v_{out}_sum"], pa.float64())
                columns[out] = pc.divide(total, pc.cast(closed[f"v_{out}_count"], pa.float64()))
            elif fn == "sum":
                columns[out] = closed[f"v_{out}_sum"]
            else:
                columns[out] = closed[f"p_{out}_{fn}"]
        columns[LINEAGE] = lineage
        return pa.table(columns)


def _stack(state: pa.Table | None, batch: pa.Table | None) -> pa.Table | None:
    tables = [t for t in (state, batch) if t is not None and t.num_rows]
    if not tables:
        return None
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
