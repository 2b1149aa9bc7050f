"""The user-facing graph: a source, named steps, one or more sinks.

A topology module defines ``topology = ...``::

    topology = Topology("orders")
    (
        topology.source(KafkaSource("orders"), format=JsonFormat(ORDER_SCHEMA))
        .filter("amount >= 0", name="valid_amount")
        .derive("amount_cents", "CAST(round(amount * 100) AS BIGINT)", name="cents")
        .select("id", "user", "amount_cents", "country", name="project")
        .sink(DeltaSink("s3://lake/orders", partition_by=["country"]))
    )

Every method returns a new :class:`Stream`, so a stream can branch: two chains
from one stream send rows to two sinks. Any :class:`~stream_etl.transforms.Step`
plugs in with :meth:`Stream.apply`. Step names are stable identifiers: they label
dead-letter rows, logs and metrics, so keep them when you edit a topology.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from stream_etl.batcher import BatchLimits
from stream_etl.dead_letters import Failure
from stream_etl.decode import Format, JsonFormat
from stream_etl.errors import ConfigurationError
from stream_etl.sinks import Sink
from stream_etl.sources import Source
from stream_etl.thresholds import check_limit
from stream_etl.transforms import (
    ApplyMapping,
    Cast,
    DatePartitions,
    Derive,
    Drop,
    DropNullFields,
    Explode,
    FillMissingValues,
    Filter,
    Flatten,
    Hash,
    IngestionTime,
    Map,
    MapBatches,
    Mask,
    Redact,
    Relationalize,
    RelationalizeChildren,
    Rename,
    ResolveChoice,
    Select,
    Sql,
    SqlAggregate,
    Step,
    Unbox,
    run_step,
)
from stream_etl.transforms.dedupe import Dedupe
from stream_etl.transforms.enrich import Enrich, Lookup
from stream_etl.transforms.stateful import BatchView, StatefulStep
from stream_etl.transforms.windows import Aggregate, Window

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")


def _check_name(name: str, what: str) -> str:
    if not _NAME.match(name):
        msg = f"{what} name {name!r} is not valid: use letters, digits, '.', '_' and '-'"
        raise ConfigurationError(msg)
    return name


@dataclass(frozen=True, slots=True)
class Node:
    """A vertex of the topology: its source, one step, or one sink."""

    id: int
    kind: Literal["source", "step", "sink"]
    name: str
    parent: int | None
    source: Source | None = None
    format: Format | None = None
    step: Step | None = None
    sink: Sink | None = None


class Topology:
    """A named dataflow. Its name is the default app id that keys stored positions."""

    def __init__(
        self,
        name: str,
        *,
        dead_letters: Sink | None = None,
        max_batch_records: int = 100_000,
        max_batch_bytes: int = 64 * 1024 * 1024,
        max_batch_latency: timedelta = timedelta(seconds=1),
        prefetch_batches: int = 1,
        max_in_flight_bytes: int | None = None,
        max_errors: int | float | None = None,
        step_max_errors: Mapping[str, int | float] | None = None,
        state_uri: str | None = None,
    ) -> None:
        """``max_errors`` and ``step_max_errors`` (by step name) fail the job when too many
        records are dead-lettered: an int is a count, a float below 1 a fraction of the
        records read (see :mod:`stream_etl.thresholds`). ``state_uri`` is where stateful
        steps keep their snapshots (default: beside the first sink, e.g. ``<table>_state``).
        ``max_in_flight_bytes`` bounds the raw bytes read and not yet committed: the source
        is paused at the bound (see :class:`~stream_etl.batcher.BatchLimits`)."""
        self.name = _check_name(name, "topology")
        self.dead_letters = dead_letters
        self.limits = BatchLimits(
            max_batch_records, max_batch_bytes, max_batch_latency, prefetch_batches, max_in_flight_bytes
        )
        check_limit(max_errors, "max_errors")
        self.max_errors = max_errors
        self.state_uri = state_uri
        self.step_max_errors = dict(step_max_errors or {})
        for step, limit in self.step_max_errors.items():
            check_limit(limit, f"step_max_errors[{step!r}]")
        self._nodes: list[Node] = []
        self._counts: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<Topology {self.name!r}: {len(self._nodes)} nodes>"

    # Building ---------------------------------------------------------------

    def source(self, source: Source, *, format: Format | None = None, name: str | None = None) -> Stream:  # noqa: A002
        """Read from ``source``; values are decoded with ``format`` (JSON by default)."""
        if any(n.kind == "source" for n in self._nodes):
            msg = "this version reads one source per topology; union of several sources is not supported yet"
            raise ConfigurationError(msg)
        node = self._add("source", name, None, source=source, format=format or JsonFormat())
        return Stream(self, node.id)

    def _add(
        self, kind: Literal["source", "step", "sink"], name: str | None, parent: int | None, **payload: object
    ) -> Node:
        label = kind if kind != "step" else getattr(payload["step"], "kind", "step")
        if name is None:
            self._counts[label] = self._counts.get(label, 0) + 1
            name = f"{label}_{self._counts[label]}"
            sink = payload.get("sink")
            if kind == "sink" and isinstance(sink, Sink):
                base = sink.default_name()
                name = base if not self._has_name(base) else f"{base}_{self._counts[label]}"
        _check_name(name, kind)
        if self._has_name(name):
            msg = f"two nodes of topology {self.name!r} are named {name!r}; names must be unique"
            raise ConfigurationError(msg)
        node = Node(len(self._nodes), kind, name, parent, **payload)  # type: ignore[arg-type]
        if node.step is not None:
            node.step.name = name
            fmt = next((n.format for n in self._nodes if n.kind == "source"), None)
            node.step.strict_columns = fmt is not None and fmt.declares_schema
        self._nodes.append(node)
        return node

    def _has_name(self, name: str) -> bool:
        return any(n.name == name for n in self._nodes)

    # Reading ----------------------------------------------------------------

    @property
    def nodes(self) -> tuple[Node, ...]:
        return tuple(self._nodes)

    @property
    def source_node(self) -> Node:
        for node in self._nodes:
            if node.kind == "source":
                return node
        msg = f"topology {self.name!r} has no source; call topology.source(...)"
        raise ConfigurationError(msg)

    @property
    def sink_nodes(self) -> list[Node]:
        return [n for n in self._nodes if n.kind == "sink"]

    def steps(self) -> Iterator[Node]:
        return (n for n in self._nodes if n.kind == "step")

    def stateful_steps(self) -> list[StatefulStep]:
        return [n.step for n in self._nodes if isinstance(n.step, StatefulStep)]

    def validate(self) -> None:
        """Fail fast on a topology that cannot run."""
        self.source_node  # noqa: B018 - raises when missing
        if not self.sink_nodes:
            msg = f"topology {self.name!r} has no sink; end a stream with .sink(...)"
            raise ConfigurationError(msg)
        if self.dead_letter_sink() is None:
            msg = f"topology {self.name!r} needs a dead-letter sink: Topology(..., dead_letters=...)"
            raise ConfigurationError(msg)
        names = {n.name for n in self._nodes} | {"decode"} | {f"sink:{n.name}" for n in self.sink_nodes}
        unknown = sorted(set(self.step_max_errors) - names)
        if unknown:
            msg = f"step_max_errors names {unknown}, which are not steps of topology {self.name!r}: {sorted(names)}"
            raise ConfigurationError(msg)

    def dead_letter_sink(self) -> Sink | None:
        if self.dead_letters is not None:
            return self.dead_letters
        primary = self.sink_nodes[0].sink if self.sink_nodes else None
        return primary.default_dead_letters() if primary is not None else None

    def describe(self) -> str:
        """The graph as indented text."""
        lines: list[str] = [f"topology {self.name}"]

        def walk(parent: int | None, depth: int) -> None:
            for node in self._nodes:
                if node.parent == parent:
                    what = {
                        "source": lambda n: n.source.describe(),
                        "step": lambda n: n.step.describe(),
                        "sink": lambda n: n.sink.describe(),
                    }[node.kind](node)
                    lines.append(f"{'  ' * depth}- {node.name}: {what}")
                    walk(node.id, depth + 1)

        walk(None, 1)
        return "\n".join(lines)

    def with_connectors(
        self,
        *,
        source: Source | None = None,
        sinks: Mapping[str, Sink] | None = None,
        dead_letters: Sink | None = None,
    ) -> Topology:
        """A copy with the source, some sinks (by name) or the dead-letter sink replaced.

        Steps are shared with the original. Used by the test harness and previews.
        """
        copy = Topology.__new__(Topology)
        copy.name, copy.limits, copy._counts = self.name, self.limits, dict(self._counts)
        copy.max_errors, copy.step_max_errors = self.max_errors, dict(self.step_max_errors)
        copy.state_uri = self.state_uri
        copy.dead_letters = dead_letters if dead_letters is not None else self.dead_letters
        replaced = dict(sinks or {})
        unknown = set(replaced) - {n.name for n in self.sink_nodes}
        if unknown:
            msg = f"topology {self.name!r} has no sink(s) named {sorted(unknown)}"
            raise ConfigurationError(msg)
        copy._nodes = [
            replace(n, source=source)
            if n.kind == "source" and source is not None
            else replace(n, sink=replaced[n.name])
            if n.kind == "sink" and n.name in replaced
            else n
            for n in self._nodes
        ]
        return copy

    # Running ----------------------------------------------------------------

    def execute(
        self, table: pa.Table | None, failures: list[Failure], view: BatchView | None = None
    ) -> dict[str, pa.Table | None]:
        """Run the steps over one decoded batch; returns each sink's input by sink name.

        ``view`` tells stateful steps where rows come from; without it they are refused."""
        results: dict[int, pa.Table | None] = {}
        outputs: dict[str, pa.Table | None] = {}
        for node in self._nodes:
            parent = results.get(node.parent) if node.parent is not None else None
            if node.kind == "source":
                results[node.id] = table
            elif node.kind == "step" and isinstance(node.step, StatefulStep):
                if view is None:
                    msg = f"step {node.name!r} is stateful and needs the batch it runs on"
                    raise ConfigurationError(msg)
                results[node.id] = node.step.process(parent, view, failures) if parent is not None else None
            elif node.kind == "step" and node.step is not None:
                results[node.id] = run_step(node.step, parent, failures) if parent is not None else None
            else:
                outputs[node.name] = parent
        return outputs


class Stream:
    """A point in the topology; each method adds a step and returns the stream after it."""

    def __init__(self, topology: Topology, node_id: int) -> None:
        self.topology = topology
        self.node_id = node_id

    def apply(self, step: Step, *, name: str | None = None) -> Stream:
        """Add any :class:`~stream_etl.transforms.Step`."""
        if not isinstance(step, Step):
            msg = f"apply() takes a Step, got {type(step).__name__}"
            raise ConfigurationError(msg)
        node = self.topology._add("step", name, self.node_id, step=step)
        return Stream(self.topology, node.id)

    def filter(self, predicate: str | pc.Expression, *, name: str | None = None) -> Stream:
        """Keep rows where ``predicate`` (SQL text or an Arrow expression) is true."""
        return self.apply(Filter(predicate), name=name)

    def derive(self, column: str, expression: str | pc.Expression, *, name: str | None = None) -> Stream:
        """Add or replace ``column`` with the value of ``expression``."""
        return self.apply(Derive(column, expression), name=name)

    def select(self, *columns: str, name: str | None = None) -> Stream:
        """Keep only ``columns``, in this order."""
        return self.apply(Select(columns), name=name)

    def drop(self, *columns: str, name: str | None = None) -> Stream:
        return self.apply(Drop(columns), name=name)

    def rename(self, mapping: Mapping[str, str], *, name: str | None = None) -> Stream:
        return self.apply(Rename(mapping), name=name)

    def cast(self, types: Mapping[str, str | pa.DataType], *, name: str | None = None) -> Stream:
        return self.apply(Cast(types), name=name)

    def map_batches(
        self, fn: Callable[[pa.Table], pa.Table], *, with_lineage: bool = False, name: str | None = None
    ) -> Stream:
        """Apply a function to each batch as a ``pyarrow.Table``."""
        return self.apply(MapBatches(fn, with_lineage=with_lineage), name=name)

    # Glue-style transforms (see docs/TRANSFORMS.md) -------------------------------

    def apply_mapping(self, mappings: Sequence[Sequence[Any]], *, name: str | None = None) -> Stream:
        """Rename, cast and project in one step: ``[(source path, source type, target, target type)]``."""
        return self.apply(ApplyMapping(mappings), name=name)

    def select_fields(self, *columns: str, name: str | None = None) -> Stream:
        """Glue's SelectFields: the same as :meth:`select`."""
        return self.apply(Select(columns), name=name)

    def drop_fields(self, *columns: str, name: str | None = None) -> Stream:
        """Glue's DropFields: the same as :meth:`drop`."""
        return self.apply(Drop(columns), name=name)

    def rename_field(self, old: str, new: str, *, name: str | None = None) -> Stream:
        """Glue's RenameField: :meth:`rename` of one column."""
        return self.apply(Rename({old: new}), name=name)

    def drop_null_fields(self, *columns: str, name: str | None = None) -> Stream:
        """Drop the columns (of ``columns``, or all) that are null in every row of the batch."""
        return self.apply(DropNullFields(columns or None), name=name)

    def fill_missing_values(self, values: Mapping[str, Any], *, name: str | None = None) -> Stream:
        """Replace nulls with a constant per column: ``{"country": "unknown"}``."""
        return self.apply(FillMissingValues(values), name=name)

    def sql(self, statement: str, *, name: str | None = None) -> Stream:
        """A SELECT statement over the table ``batch``, run by DuckDB (see :mod:`stream_etl.transforms.sql`)."""
        step = Sql(statement)
        return self.apply(SqlAggregate(statement) if step.combines_rows else step, name=name)

    def flatten(self, *, separator: str = "_", columns: Sequence[str] | None = None, name: str | None = None) -> Stream:
        """Nested struct columns become top-level columns ``a_b`` (or ``a.b`` with ``separator="."``)."""
        return self.apply(Flatten(separator=separator, columns=columns), name=name)

    def explode(
        self, column: str, *, keep_empty: bool = False, index: str | None = None, name: str | None = None
    ) -> Stream:
        """One row per element of list ``column``."""
        return self.apply(Explode(column, keep_empty=keep_empty, index=index), name=name)

    def unbox(self, column: str, *, schema: pa.Schema | None = None, name: str | None = None) -> Stream:
        """Parse JSON text in ``column`` into a struct; rows with invalid JSON are dead-lettered."""
        return self.apply(Unbox(column, schema=schema), name=name)

    def relationalize(
        self,
        column: str,
        *,
        key: str | Sequence[str],
        index: str = "index",
        prefix: str = "",
        separator: str = "_",
        name: str | None = None,
    ) -> tuple[Stream, Stream]:
        """Split an array-of-structs column into a child table: returns ``(parent, children)``.

        ``parent`` is this stream without ``column``; ``children`` has one row per element:
        the ``key`` columns (the join key), ``index`` (the element's position), and the
        element's fields flattened. Give each its own sink; each is exactly-once on its own.
        The child step is named ``<name>.children``.
        """
        keys = [key] if isinstance(key, str) else list(key)
        parent = self.apply(Relationalize(column, keys), name=name)
        parent_name = self.topology._nodes[parent.node_id].name
        child = RelationalizeChildren(column, keys, index=index, prefix=prefix, separator=separator)
        return parent, self.apply(child, name=f"{parent_name}.children")

    def resolve_choice(self, specs: Mapping[str, str], *, name: str | None = None) -> Stream:
        """Give columns of mixed type one shape: ``{"price": "cast:double", "code": "make_cols"}``."""
        return self.apply(ResolveChoice(specs), name=name)

    def mask(self, *columns: str, char: str = "*", keep_last: int = 0, name: str | None = None) -> Stream:
        """Replace the characters of ``columns`` with ``char``, except the last ``keep_last``."""
        return self.apply(Mask(columns, char=char, keep_last=keep_last), name=name)

    def hash(self, *columns: str, salt: str = "", name: str | None = None) -> Stream:
        """Replace ``columns`` with the hex SHA-256 of ``salt + value``."""
        return self.apply(Hash(columns, salt=salt), name=name)

    def redact(self, *columns: str, pattern: str, replacement: str = "[REDACTED]", name: str | None = None) -> Stream:
        """Replace the matches of regex ``pattern`` in ``columns`` with ``replacement``."""
        return self.apply(Redact(columns, pattern=pattern, replacement=replacement), name=name)

    def ingestion_time(self, column: str = "ingested_at", *, name: str | None = None) -> Stream:
        """Add ``column``: when the batch was processed (timestamp, UTC)."""
        return self.apply(IngestionTime(column), name=name)

    def date_partitions(
        self,
        column: str,
        *,
        parts: Sequence[str] = ("year", "month", "day"),
        prefix: str = "",
        name: str | None = None,
    ) -> Stream:
        """Add ``year``/``month``/``day``/``hour`` columns from timestamp ``column``."""
        return self.apply(DatePartitions(column, parts=parts, prefix=prefix), name=name)

    def map(
        self,
        fn: Callable[[dict[str, Any]], dict[str, Any] | None],
        *,
        schema: pa.Schema | None = None,
        name: str | None = None,
    ) -> Stream:
        """Apply ``fn`` to each record as a dict (slow: Python per record; prefer the columnar steps)."""
        return self.apply(Map(fn, schema=schema), name=name)

    def enrich(
        self,
        lookup: Lookup,
        *,
        on: str | Sequence[str] | Mapping[str, str],
        how: Literal["left", "inner"] = "left",
        columns: Sequence[str] | None = None,
        reload_every: timedelta = timedelta(minutes=5),
        name: str | None = None,
    ) -> Stream:
        """Join with a lookup table (see :mod:`stream_etl.transforms.enrich`)."""
        return self.apply(Enrich(lookup, on=on, how=how, columns=columns, reload_every=reload_every), name=name)

    def dedupe(
        self,
        *keys: str,
        time_column: str | None = None,
        horizon: timedelta | None = None,
        max_keys: int = 1_000_000,
        name: str | None = None,
    ) -> Stream:
        """Keep the first record of each key per partition (see :mod:`stream_etl.transforms.dedupe`)."""
        return self.apply(Dedupe(keys, time_column=time_column, horizon=horizon, max_keys=max_keys), name=name)

    def window(
        self,
        time_column: str,
        size: timedelta,
        *,
        aggregates: Mapping[str, tuple[str, Aggregate]],
        group_by: Sequence[str] = (),
        slide: timedelta | None = None,
        allowed_lateness: timedelta = timedelta(0),
        late: Literal["dead_letter", "drop"] = "dead_letter",
        name: str | None = None,
    ) -> Stream:
        """Aggregate into event-time windows (see :mod:`stream_etl.transforms.windows`)."""
        step = Window(
            time_column,
            size,
            aggregates=aggregates,
            group_by=group_by,
            slide=slide,
            allowed_lateness=allowed_lateness,
            late=late,
        )
        return self.apply(step, name=name)

    def sink(self, sink: Sink, *, name: str | None = None) -> Stream:
        """Write this stream to ``sink``. The first sink added is the primary one."""
        if not isinstance(sink, Sink):
            msg = f"sink() takes a Sink, got {type(sink).__name__}"
            raise ConfigurationError(msg)
        self.topology._add("sink", name, self.node_id, sink=sink)
        return self
