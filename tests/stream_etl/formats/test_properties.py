"""Arbitrary bytes through every format: decoding never raises, and every value is either a row
(exactly once, by its lineage) or a dead letter with a reason."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_etl import Topology
from stream_etl.decode import Decoded, Format
from stream_etl.formats import (
    AvroFormat,
    ConfluentAvroFormat,
    CsvFormat,
    DictResolver,
    JsonSchemaFormat,
    ProtobufFormat,
)
from stream_etl.formats.avro import confluent_frame, encode
from stream_etl.records import LINEAGE
from stream_etl.testing import ListSource, MemorySink, run_topology
from tests.stream_etl.formats.test_protobuf import _order_class

AVRO = {
    "type": "record",
    "name": "R",
    "fields": [{"name": "id", "type": "long"}, {"name": "s", "type": ["null", "string"], "default": None}],
}
JSON_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "s": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["id"],
}
FORMATS: list[Format] = [
    CsvFormat(pa.schema([("id", pa.int64()), ("s", pa.string())])),
    CsvFormat(columns=["a", "b", "c"]),
    JsonSchemaFormat(JSON_SCHEMA),
    AvroFormat(AVRO),
    ConfluentAvroFormat(DictResolver({1: AVRO})),
    ProtobufFormat(_order_class()),
]

good_avro = st.builds(
    lambda i, s: encode(AVRO, {"id": i, "s": s}), st.integers(-(2**63), 2**63 - 1), st.none() | st.text()
)
values = st.lists(
    st.none()
    | st.binary(max_size=40)
    | st.text(max_size=30).map(str.encode)
    | good_avro
    | good_avro.map(lambda body: confluent_frame(1, body))
    | st.builds(lambda i, s: f'{{"id": {i}, "s": {s!r}}}'.encode(), st.integers(), st.text(max_size=5))
    | st.builds(lambda i, s: f"{i},{s}".encode(), st.integers(), st.text(max_size=5)),
    max_size=30,
)


def _accounted(decoded: Decoded, n: int) -> None:
    rows = decoded.table[LINEAGE].to_pylist() if decoded.table is not None else []
    failed = [f.row for f in decoded.failures]
    assert len(rows) == len(set(rows)), "a record became two rows"
    assert len(failed) == len(set(failed)), "a record failed twice"
    assert sorted(rows + failed) == list(range(n)), "a record was lost or invented"
    assert all(f.message and f.step == "decode" for f in decoded.failures)


@settings(max_examples=150, deadline=None)
@given(values)
def test_every_format_accounts_for_every_value(batch: list[bytes | None]) -> None:
    for fmt in FORMATS:
        _accounted(fmt.decode(batch), len(batch))


@settings(max_examples=25, deadline=None)
@given(values, st.sampled_from(range(len(FORMATS))))
def test_a_topology_over_any_format_accounts_for_every_record(batch: list[bytes | None], which: int) -> None:
    fmt = FORMATS[which]
    topology = Topology("prop", max_batch_records=7)
    first = fmt.schema.names[0] if getattr(fmt, "schema", None) is not None else "a"  # type: ignore[attr-defined]
    topology.source(ListSource([]), format=fmt).filter(f"{first} IS NOT NULL", name="keep").sink(MemorySink("out"))

    result = run_topology(topology, batch, partitions=2)

    stats = result.summary.stats
    assert stats["records_in"] == len(batch)
    assert stats["records_in"] == stats["written"] + stats["filtered"] + stats["dead_lettered"]
    assert result.dead_letters.num_rows == stats["dead_lettered"]
