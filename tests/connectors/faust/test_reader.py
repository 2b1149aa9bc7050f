"""The reader between a Faust agent and the run loop (connectors/faust/agent.py), without a broker."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from connectors.faust import FaustSource
from connectors.faust.agent import FaustBridge, FaustReader
from stream_etl import RunContext, Topology
from stream_etl.errors import ConfigurationError
from stream_etl.records import SourcePartition
from stream_etl.testing import MemorySink

P0, P1 = SourcePartition("orders", 0), SourcePartition("orders", 1)


class StoredPositions:
    """An assignment listener answering from positions a sink stored."""

    def __init__(self, stored: dict[SourcePartition, int]) -> None:
        self.stored = stored
        self.assigned: list[SourcePartition] = []

    def on_assigned(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, int]:
        self.assigned += partitions
        return {sp: self.stored[sp] + 1 for sp in partitions if sp in self.stored}

    def on_revoked(self, partitions: Sequence[SourcePartition]) -> None:
        pass

    def resume_cursors(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, str]:
        return {}


def _feed(reader: FaustReader, offsets: list[tuple[int, int]]) -> None:
    reader.feed([b"{}" for _ in offsets], ["orders"] * len(offsets), [p for p, _ in offsets], [o for _, o in offsets])


def test_partitions_are_announced_once_and_stored_records_are_released() -> None:
    listener = StoredPositions({P0: 1})
    reader = FaustReader(listener)
    _feed(reader, [(0, 0), (0, 1), (0, 2), (1, 0)])

    chunk = reader.poll(100, 1.0)

    assert chunk is not None and chunk.positions == [0, 1, 2, 0]
    assert sorted(listener.assigned) == [P0, P1]
    assert reader.committed_positions() == {P0: 1}  # what the sink stores can be acked at once
    _feed(reader, [(0, 3)])
    reader.poll(100, 1.0)
    assert sorted(listener.assigned) == [P0, P1]


def test_a_reseek_replays_what_is_held_above_the_stored_position() -> None:
    reader = FaustReader(StoredPositions({}))
    _feed(reader, [(0, 0), (0, 1), (0, 2), (1, 5)])
    reader.poll(100, 1.0)
    reader.commit({P0: 0})

    reader.seek({P0: 2, P1: None})

    replayed = [reader.poll(100, 1.0), reader.poll(100, 1.0)]
    assert sorted((c.pids[0], c.positions) for c in replayed if c is not None) == [(0, [2]), (1, [5])]
    assert reader.poll(100, 0.01) is None


def test_only_continuous_stateless_topologies() -> None:
    with pytest.raises(ConfigurationError, match="continuously"):
        FaustSource().open(RunContext(app_id="f", mode="until_caught_up"), StoredPositions({}))
    topology = Topology("faust")
    topology.source(FaustSource()).dedupe("id", name="dedupe").sink(MemorySink())
    with pytest.raises(ConfigurationError, match="stateless steps only"):
        FaustBridge(topology, app_id="f")
