"""Preview a topology on a few live records, with no side effects.

``stream-etl preview module.py --limit N`` reads up to N records from the
topology's source through :meth:`Source.for_preview` (Kafka: partitions assigned
directly, no consumer-group membership, no offset commits), decodes them, runs
every step, and reports each step's output, schema and the records that failed
there. Nothing is written: no sink is opened, no position or offset is stored, so
a following ``run`` reads exactly what it would have read anyway.

Stateful steps start from empty state (their stored state is not read). The rows
shown per sink are what reaches the sink before its schema policy applies, unless
``check_sinks`` (``--check-sinks``) opens the sinks to read their schemas and fit the
rows as a run would; only sinks whose ``opens_read_only`` is true (Delta) are checked,
so nothing is written.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from stream_etl.batcher import Batcher, BatchLimits
from stream_etl.context import RunContext
from stream_etl.dead_letters import Failure, dead_letter_table
from stream_etl.decode import DECODE_STEP
from stream_etl.errors import ConfigurationError
from stream_etl.records import LINEAGE, Batch, SourcePartition
from stream_etl.sinks import Sink, SinkWriter
from stream_etl.sources import SourceReader
from stream_etl.topology import Topology
from stream_etl.transforms import Step, run_step
from stream_etl.transforms.stateful import BatchView, StatefulStep


@dataclass(frozen=True, slots=True)
class NodePreview:
    """One node's result: its output rows (None when nothing came out) and what failed there."""

    name: str
    kind: str
    description: str
    output: pa.Table | None
    failures: list[Failure] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Preview:
    """What ``preview`` saw: the records read, each node's result, every dead letter."""

    records: int
    nodes: list[NodePreview]
    dead_letters: pa.Table | None


class NoStoredPositions:
    """Assignment listener that starts every partition at the source's start position."""

    def on_assigned(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, int]:
        return {}

    def on_revoked(self, partitions: Sequence[SourcePartition]) -> None:
        return None

    def resume_cursors(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, str]:
        return {}


def preview(
    topology: Topology, ctx: RunContext, *, limit: int = 10, timeout_s: float = 10.0, check_sinks: bool = False
) -> Preview:
    """Read up to ``limit`` records (waiting at most ``timeout_s`` for them) and run the steps.

    ``check_sinks`` also opens each sink and fits its rows to the sink's current schema under
    its policy (``sink:<name>`` dead letters), as a run would; sinks are only read, never written."""
    if limit < 1:
        msg = f"--limit must be at least 1, got {limit}"
        raise ConfigurationError(msg)
    source_node = topology.source_node
    if source_node.source is None or source_node.format is None:
        msg = f"topology {topology.name!r} has no source; call topology.source(...)"
        raise ConfigurationError(msg)
    for node in topology.steps():
        if node.step is not None:
            node.step.open(ctx)
    reader = source_node.source.for_preview().open(ctx, NoStoredPositions())
    try:
        reader.start()
        batch = _read(reader, limit, timeout_s)
    finally:
        reader.close()
    if batch is None:
        return Preview(0, [], None)
    return _run(topology, ctx, batch, reader, check_sinks=check_sinks)


class _Fit(Step):
    """A sink's schema check, run like the run loop runs it (rows that do not fit -> dead letters)."""

    kind = "conform"

    def __init__(self, name: str, writer: SinkWriter) -> None:
        super().__init__()
        self.name = f"sink:{name}"
        self.writer = writer
        self.snapshot = writer.snapshot()

    def apply(self, table: pa.Table) -> pa.Table:
        return self.writer.conform(table, self.snapshot)


def _fit(name: str, sink: Sink, ctx: RunContext, rows: pa.Table, failures: list[Failure]) -> pa.Table | None:
    writer = sink.open(ctx)
    try:
        return run_step(_Fit(name, writer), rows, failures)
    finally:
        writer.close()


def _read(reader: SourceReader, limit: int, timeout_s: float) -> Batch | None:
    batcher = Batcher(BatchLimits(max_batch_records=limit), small_first=False)
    deadline = time.monotonic() + timeout_s
    ends: dict[SourcePartition, int] | None = None
    last: dict[int, int] = {}  # partition id -> highest position read
    while batcher.records < limit and time.monotonic() < deadline:
        chunk = reader.poll(batcher.room(), timeout=min(0.5, max(deadline - time.monotonic(), 0.01)))
        if chunk is not None and len(chunk):
            batcher.add(chunk)
            pids = chunk.pids.to_pylist() if isinstance(chunk.pids, pa.Array) else chunk.pids
            positions = chunk.positions.to_pylist() if isinstance(chunk.positions, pa.Array) else chunk.positions
            for pid, position in zip(pids, positions, strict=True):  # at most --limit records
                last[pid] = max(last.get(pid, -1), position)
            continue
        if ends is None:
            ends = reader.end_positions()
        if all(last.get(reader.registry.id_of(sp), -1) >= end - 1 for sp, end in ends.items()):
            break  # every partition read to its end: no more records to wait for
    if not batcher.records:
        return None
    return batcher.close(generation=0)


def _run(topology: Topology, ctx: RunContext, batch: Batch, reader: SourceReader, *, check_sinks: bool) -> Preview:
    source_node = topology.source_node
    assert source_node.format is not None  # noqa: S101 - checked by preview()
    failures: list[Failure] = []
    decoded = source_node.format.decode(batch.values)
    failures.extend(decoded.failures)
    table = decoded.table
    if table is not None:
        for column, values in reader.metadata_columns(batch, table[LINEAGE].combine_chunks()).items():
            table = table.append_column(column, values)
    results: dict[int, pa.Table | None] = {}
    nodes = [NodePreview(DECODE_STEP, "decode", repr(source_node.format), table, list(decoded.failures))]
    view = BatchView(batch)
    for node in topology.nodes:
        parent = results.get(node.parent) if node.parent is not None else None
        before = len(failures)
        if node.kind == "source":
            results[node.id] = table
            continue
        if node.kind == "step" and node.step is not None:
            if parent is None:
                out = None
            elif isinstance(node.step, StatefulStep):
                out = node.step.process(parent, view, failures)
            else:
                out = run_step(node.step, parent, failures)
            results[node.id] = out
            nodes.append(NodePreview(node.name, "step", node.step.describe(), out, failures[before:]))
        elif node.kind == "sink" and node.sink is not None:
            description, out = node.sink.describe(), parent
            if check_sinks and not node.sink.opens_read_only:
                description += " (not checked: opening this sink may write to it)"
            elif check_sinks and parent is not None:
                out = _fit(node.name, node.sink, ctx, parent, failures)
            nodes.append(NodePreview(node.name, "sink", description, out, failures[before:]))
    dead = dead_letter_table(batch, failures, reader.registry, app_id=ctx.app_id) if failures else None
    return Preview(len(batch), nodes, dead.drop_columns([LINEAGE]) if dead is not None else None)
