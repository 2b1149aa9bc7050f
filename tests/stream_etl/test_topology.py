"""Topology: the builder, step names, branches, validation, describe() and with_connectors()."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import pytest

from stream_etl import JsonFormat, Topology
from stream_etl.context import RunContext
from stream_etl.dead_letters import Failure
from stream_etl.errors import ConfigurationError
from stream_etl.records import LINEAGE
from stream_etl.sinks import Sink, SinkWriter
from stream_etl.testing import ListSource, MemorySink, run_topology
from stream_etl.transforms import Filter, Select


class BareSink(Sink):
    """A sink that offers no default dead-letter sink."""

    def open(self, ctx: RunContext) -> SinkWriter:
        raise NotImplementedError

    def describe(self) -> str:
        return "bare sink"


def _decoded(rows: list[dict[str, object]]) -> pa.Table:
    table = pa.Table.from_pylist(rows)
    return table.append_column(LINEAGE, pa.array(range(len(rows)), pa.int32()))


def test_builder_chains_steps_and_returns_a_stream_per_step() -> None:
    topology = Topology("orders")
    source = topology.source(ListSource([]))
    filtered = source.filter("amount >= 0", name="valid")
    end = filtered.select("id", name="project").sink(MemorySink("out"))

    assert end is not filtered
    assert end.node_id == filtered.node_id + 1  # sink() returns the stream it ends
    assert [(n.kind, n.name, n.parent) for n in topology.nodes] == [
        ("source", "source_1", None),
        ("step", "valid", 0),
        ("step", "project", 1),
        ("sink", "out", 2),
    ]
    assert [n.name for n in topology.steps()] == ["valid", "project"]
    assert isinstance(topology.source_node.format, JsonFormat)


def test_default_step_names_count_per_kind() -> None:
    topology = Topology("t")
    (
        topology.source(ListSource([]))
        .filter("a > 0")
        .derive("b", "a + 1")
        .filter("b > 2")
        .select("b")
        .map_batches(lambda t: t)
        .sink(MemorySink("out"))
    )

    assert [n.name for n in topology.steps()] == ["filter_1", "derive_1", "filter_2", "select_1", "map_batches_1"]


def test_the_topology_names_the_step_objects() -> None:
    step = Filter("a > 0")
    topology = Topology("t")
    topology.source(ListSource([])).apply(step, name="positive")

    assert step.name == "positive"


def test_default_sink_names_come_from_the_sink_and_stay_unique() -> None:
    topology = Topology("t")
    stream = topology.source(ListSource([]))
    stream.sink(MemorySink("lake")).sink(MemorySink("lake")).sink(MemorySink("other"))

    assert [n.name for n in topology.sink_nodes] == ["lake", "lake_2", "other"]


def test_a_sink_whose_default_name_is_taken_by_a_step_gets_a_numbered_name() -> None:
    topology = Topology("t")
    topology.source(ListSource([])).filter("a > 0", name="lake").sink(MemorySink("lake"))

    assert [n.name for n in topology.sink_nodes] == ["lake_1"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param("dup", "are named 'dup'; names must be unique", id="duplicate"),
        pytest.param("has space", "step name 'has space' is not valid", id="space"),
        pytest.param("-leading", "is not valid", id="leading-dash"),
        pytest.param("x" * 101, "is not valid", id="too-long"),
    ],
)
def test_bad_step_names_are_refused(name: str, message: str) -> None:
    topology = Topology("t")
    stream = topology.source(ListSource([])).filter("a > 0", name="dup")

    with pytest.raises(ConfigurationError, match=message):
        stream.filter("a > 1", name=name)


def test_a_bad_topology_name_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="topology name 'a/b' is not valid"):
        Topology("a/b")


def test_a_topology_reads_one_source() -> None:
    topology = Topology("t")
    topology.source(ListSource([]))

    with pytest.raises(ConfigurationError, match="one source per topology"):
        topology.source(ListSource([]))


def test_apply_and_sink_check_their_argument_types() -> None:
    stream = Topology("t").source(ListSource([]))

    with pytest.raises(ConfigurationError, match="apply\\(\\) takes a Step, got function"):
        stream.apply(lambda t: t)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="sink\\(\\) takes a Sink, got str"):
        stream.sink("s3://lake/x")  # type: ignore[arg-type]


def test_batch_limits_come_from_the_topology() -> None:
    topology = Topology("t", max_batch_records=10, max_batch_bytes=1000, max_batch_latency=timedelta(seconds=3))

    assert topology.limits.max_batch_records == 10
    assert topology.limits.max_batch_bytes == 1000
    assert topology.limits.max_batch_latency == timedelta(seconds=3)
    with pytest.raises(ConfigurationError, match="max_batch_records"):
        Topology("t", max_batch_records=0)


def test_validate_accepts_a_complete_topology() -> None:
    topology = Topology("t")
    topology.source(ListSource([])).sink(MemorySink("out"))

    topology.validate()

    dead = topology.dead_letter_sink()
    assert isinstance(dead, MemorySink)
    assert dead.name == "out_dead_letters"


def test_validate_without_source() -> None:
    with pytest.raises(ConfigurationError, match="has no source; call topology.source"):
        Topology("t").validate()


def test_validate_without_sink() -> None:
    topology = Topology("t")
    topology.source(ListSource([])).filter("a > 0")

    with pytest.raises(ConfigurationError, match="has no sink; end a stream with .sink"):
        topology.validate()


def test_validate_without_a_dead_letter_sink() -> None:
    topology = Topology("t")
    topology.source(ListSource([])).sink(BareSink())

    with pytest.raises(ConfigurationError, match="needs a dead-letter sink"):
        topology.validate()


def test_an_explicit_dead_letter_sink_wins_over_the_default() -> None:
    dead = MemorySink("dl")
    topology = Topology("t", dead_letters=dead)
    topology.source(ListSource([])).sink(BareSink())

    topology.validate()
    assert topology.dead_letter_sink() is dead


def test_describe_draws_the_graph_with_branches() -> None:
    topology = Topology("orders")
    valid = topology.source(ListSource([{"a": 1}, {"a": 2}])).filter("amount >= 0", name="valid")
    valid.select("id", name="project").sink(MemorySink("lake"))
    valid.derive("big", "amount > 100", name="flag").sink(MemorySink("audit"))

    assert topology.describe() == "\n".join(
        [
            "topology orders",
            "  - source_1: list of 2 records in 1 partition(s)",
            "    - valid: filter amount >= 0",
            "      - project: select id",
            "        - lake: memory sink lake",
            "      - flag: derive big = amount > 100",
            "        - audit: memory sink audit",
        ]
    )


def test_execute_sends_each_branch_to_its_sink() -> None:
    topology = Topology("t")
    valid = topology.source(ListSource([])).filter("amount >= 0", name="valid")
    valid.select("id", name="project").sink(MemorySink("ids"))
    valid.filter("amount > 10", name="over_ten").sink(MemorySink("big"))
    failures: list[Failure] = []

    outputs = topology.execute(
        _decoded([{"id": 1, "amount": 5}, {"id": 2, "amount": -1}, {"id": 3, "amount": 50}]), failures
    )

    assert set(outputs) == {"ids", "big"}
    assert outputs["ids"] is not None
    assert outputs["ids"].column_names == ["id", LINEAGE]
    assert outputs["ids"][LINEAGE].to_pylist() == [0, 2]
    assert outputs["big"] is not None
    assert outputs["big"]["id"].to_pylist() == [3]
    assert failures == []


def test_execute_without_decoded_rows_gives_every_sink_nothing() -> None:
    topology = Topology("t")
    topology.source(ListSource([])).filter("a > 0").sink(MemorySink("out"))

    assert topology.execute(None, []) == {"out": None}


def test_branching_to_two_sinks_end_to_end() -> None:
    topology = Topology("t")
    valid = topology.source(ListSource([])).filter("amount >= 0", name="valid")
    valid.select("id", name="project").sink(MemorySink("ids"))
    valid.filter("amount > 10", name="over_ten").sink(MemorySink("big"))
    records = [{"id": i, "amount": a} for i, a in enumerate([5, -1, 50, 11, 0])]

    result = run_topology(topology, records)

    assert result.output("ids")["id"].to_pylist() == [0, 2, 3, 4]
    assert result.output("big")["id"].to_pylist() == [2, 3]
    assert result.summary.stats["written"] == 4
    assert result.summary.stats["filtered"] == 1


def test_with_connectors_replaces_source_and_sinks_and_leaves_the_original_alone() -> None:
    original_sink = MemorySink("out")
    topology = Topology("t", max_batch_records=5)
    topology.source(ListSource([{"a": 1}])).filter("a > 0", name="positive").sink(original_sink)
    source, sink, dead = ListSource([{"a": 2}]), MemorySink("other"), MemorySink("dl")

    copy = topology.with_connectors(source=source, sinks={"out": sink}, dead_letters=dead)

    assert copy.source_node.source is source
    assert copy.sink_nodes[0].sink is sink
    assert copy.sink_nodes[0].name == "out"
    assert copy.dead_letter_sink() is dead
    assert copy.limits == topology.limits
    assert next(copy.steps()).step is next(topology.steps()).step  # steps are shared
    assert topology.sink_nodes[0].sink is original_sink
    assert topology.source_node.source is not source
    assert topology.dead_letters is None


def test_with_connectors_keeps_what_is_not_replaced() -> None:
    topology = Topology("t")
    topology.source(ListSource([])).sink(MemorySink("a")).sink(MemorySink("b"))
    replacement = MemorySink("b2")

    copy = topology.with_connectors(sinks={"b": replacement})

    assert copy.source_node.source is topology.source_node.source
    assert [n.sink for n in copy.sink_nodes] == [topology.sink_nodes[0].sink, replacement]


def test_with_connectors_refuses_unknown_sink_names() -> None:
    topology = Topology("t")
    topology.source(ListSource([])).sink(MemorySink("out"))

    with pytest.raises(ConfigurationError, match=r"has no sink\(s\) named \['nope'\]"):
        topology.with_connectors(sinks={"nope": MemorySink()})


def test_a_copy_and_its_original_grow_independently() -> None:
    topology = Topology("t")
    stream = topology.source(ListSource([])).filter("a > 0")
    copy = topology.with_connectors()

    stream.filter("a > 1")

    assert [n.name for n in topology.steps()] == ["filter_1", "filter_2"]
    assert [n.name for n in copy.steps()] == ["filter_1"]


def test_select_step_is_a_select() -> None:
    topology = Topology("t")
    topology.source(ListSource([])).select("a", "b")

    step = next(topology.steps()).step
    assert isinstance(step, Select)
    assert step.columns == ["a", "b"]


@pytest.mark.parametrize(
    ("schema", "strict"), [(pa.schema([("a", pa.int64())]), True), (None, False)], ids=["declared", "inferred"]
)
def test_steps_are_strict_about_columns_only_when_the_format_declares_a_schema(
    schema: pa.Schema | None, strict: bool
) -> None:
    topology = Topology("strictness")
    stream = topology.source(ListSource([]), format=JsonFormat(schema)).filter("a > 1", name="f")

    stream.sink(MemorySink("out"))

    step = next(topology.steps()).step
    assert step is not None and step.strict_columns is strict
