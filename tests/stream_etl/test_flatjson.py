"""The flat-JSON fast path reads exactly what Arrow's reader reads, or declines."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.json as pa_json
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_etl import flatjson
from stream_etl.decode import JsonFormat
from stream_etl.flatjson import FlatJson
from stream_etl.samples import ORDER_SCHEMA, malformed, order

pytestmark = pytest.mark.skipif(not flatjson.enabled(), reason="stream_etl._flatjson is not built")

SCHEMA = pa.schema(
    [
        ("i", pa.int64()),
        ("f", pa.float64()),
        ("s", pa.string()),
        ("b", pa.bool_()),
        ("ls", pa.list_(pa.string())),
        ("li", pa.list_(pa.int64())),
        ("lf", pa.list_(pa.float64())),
        ("lb", pa.list_(pa.bool_())),
    ]
)


def arrow(buffer: bytes, schema: pa.Schema, unexpected: str = "ignore") -> pa.Table | None:
    options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior=unexpected)
    try:
        return pa_json.read_json(pa.BufferReader(buffer), parse_options=options).combine_chunks()
    except pa.ArrowInvalid:
        return None


def fast(buffer: bytes, n: int, schema: pa.Schema = SCHEMA, unexpected: str = "ignore") -> pa.Table | None:
    parser = FlatJson.for_schema(schema, unexpected_fields=unexpected)
    assert parser is not None
    table = parser.parse(buffer, n)
    if table is not None:
        table.validate(full=True)
    return table


def same_as_arrow(lines: list[bytes], schema: pa.Schema = SCHEMA, unexpected: str = "ignore") -> pa.Table | None:
    """The fast path's table, after checking it against Arrow's (or that it declined where Arrow fails)."""
    buffer = b"\n".join(lines)
    try:
        buffer.decode("utf-8")
    except UnicodeDecodeError:
        return None  # the decoder checks UTF-8 before either parser
    mine = fast(buffer, len(lines), schema, unexpected)
    theirs = arrow(buffer, schema, unexpected)
    if theirs is None or theirs.num_rows != len(lines):
        assert mine is None, f"the fast path read what Arrow refuses: {buffer[:200]!r}"
        return None
    if mine is not None:
        assert mine.schema == theirs.schema
        assert mine.equals(theirs), f"{mine.to_pylist()} != {theirs.to_pylist()}"
    return mine


# -- what it takes, exactly as Arrow does ---------------------------------------------------------


def test_orders_are_read_exactly_as_arrow_reads_them() -> None:
    lines = [orjson.dumps(order(i)) for i in range(5000)]
    table = same_as_arrow(lines, ORDER_SCHEMA)
    assert table is not None
    assert table.num_rows == 5000


@pytest.mark.parametrize(
    "line",
    [
        b"{}",
        b'{"i": 1, "f": 2, "s": "x", "b": true}',
        b'{"i":-0,"f":-0}',
        b'{"f":0.30000000000000004}',
        b'{"f":1.7976931348623157e308}',
        b'{"f":5e-324}',
        b'{"f":2.2250738585072011e-308,"lf":[1e-400,-1e-400,4.9e-324]}',
        b'{"f":123456789012345678901234567890}',
        b'{"f":1E5,"i":-9223372036854775}',
        b'{"f":-1.5e-7}',
        b'{"f":0.000001234}',
        b'{"s":"\\u00e9\\ud83d\\ude00 \\" \\\\ \\/ \\b\\f\\n\\r\\t"}',
        '{"s":"déjà vu ✓"}'.encode(),
        b'{"s":""}',
        b'{"s":null,"i":null,"f":null,"b":null,"ls":null}',
        b'{"ls":[],"li":[1,null,-2],"lf":[1.5,null],"lb":[true,false,null]}',
        b'{"ls":["a",null,"\\u0041"]}',
        b' { "i" : 1 , "s" : "a" } ',
        b'{\t"i":\t1}',
        b'{"x":{"y":[1,{"z":[true,null,"q\\n"]}],"w":{}},"i":1}',
        b'{"x":[],"y":{},"z":-1.5e3,"w":"\\u1234"}',
        b'{"b":false}',
    ],
)
def test_values_it_takes(line: bytes) -> None:
    assert same_as_arrow([line]) is not None, "the fast path declined a record it should read"


def test_fields_in_any_order_and_missing() -> None:
    lines = [b'{"s":"a","i":1}', b'{"i":2}', b'{"b":true,"s":"c","f":1.0,"i":3}', b"{}"]
    table = same_as_arrow(lines)
    assert table is not None
    assert table.column("i").to_pylist() == [1, 2, 3, None]
    assert table.column("s").null_count == 2


def test_a_trailing_newline_is_no_row() -> None:
    assert fast(b'{"i":1}\n{"i":2}\n', 2) is not None


# -- what it leaves to Arrow ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b'{"i":1.0}',  # Arrow: couldn't parse
        b'{"i":1e2}',
        b'{"i":9223372036854775808}',
        b'{"s":5}',  # changed from string to number
        b'{"b":0}',
        b'{"i":1,"i":2}',  # specified twice
        b'{"i":01}',
        b'{"f":.5}',
        b'{"f":NaN}',
        b'{"f":1e400}',  # Arrow: too big (but 1.7976931348623157e309 is inf)
        b'{"lf":[-1.7976931348623157e309]}',
        b'{"i":1,}',
        b'{"s":"a\tb"}',  # a raw control character
        b'{"s":"\\ud83d"}',  # a lone surrogate
        b'{"s":"\\x"}',
        b'{"x":[1,2,}',
        b'{"x":nul}',
        b'{"\\u0069":1}',  # an escaped key
        b'{"ls":"a"}',
        b'{"ls":[1]}',
        b'{"i":1}{"i":2}',
        b'{"i":1',
        b"[1]",
        b"",
    ],
)
def test_values_it_declines(line: bytes) -> None:
    assert fast(line, 1) is None
    same_as_arrow([line])


def test_a_line_break_inside_an_object_is_declined() -> None:
    assert fast(b'{"i":\n1}', 1) is None
    assert fast(b'{"i":1}\r\n{"i":2}', 2) is None


def test_more_or_fewer_objects_than_values_are_declined() -> None:
    assert fast(b'{"i":1}\n{"i":2}', 1) is None
    assert fast(b'{"i":1}\n{"i":2}', 3) is None


def test_unexpected_fields_unless_ignored_go_to_arrow() -> None:
    line = b'{"i":1,"extra":2}'
    assert fast(line, 1, unexpected="ignore") is not None
    assert fast(line, 1, unexpected="error") is None
    assert fast(line, 1, unexpected="infer") is None


def test_deep_nesting_in_an_ignored_field_goes_to_arrow() -> None:
    deep = b'{"x":' + b"[" * 100 + b"]" * 100 + b',"i":1}'
    assert fast(deep, 1) is None
    shallow = b'{"x":' + b"[" * 60 + b"]" * 60 + b',"i":1}'
    assert same_as_arrow([shallow]) is not None


@pytest.mark.parametrize(
    "schema",
    [
        None,
        pa.schema([("t", pa.timestamp("ms"))]),
        pa.schema([("s", pa.struct([("a", pa.int64())]))]),
        pa.schema([("i", pa.int32())]),
        pa.schema([pa.field("i", pa.int64(), nullable=False)]),
        pa.schema([("l", pa.list_(pa.field("item", pa.int64(), nullable=False)))]),
        pa.schema([("l", pa.large_list(pa.int64()))]),
    ],
)
def test_schemas_it_does_not_write(schema: pa.Schema | None) -> None:
    assert FlatJson.for_schema(schema, unexpected_fields="ignore") is None


def test_switched_off_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_ETL_FAST_JSON", "0")
    assert FlatJson.for_schema(SCHEMA, unexpected_fields="ignore") is None


# -- generated input: never a different answer from Arrow's ---------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)
keys = st.sampled_from([*SCHEMA.names, "extra", "i ", ""])
records = st.dictionaries(keys, json_values, max_size=10)


def _serialise(record: dict[str, Any], style: int) -> bytes:
    if style == 0:
        try:
            return orjson.dumps(record)
        except TypeError:  # an integer beyond 64 bits
            style = 2
    if style == 1:
        return json.dumps(record).encode()  # spaces, \\u escapes
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(records, st.integers(0, 2)), min_size=1, max_size=6))
def test_generated_records_read_as_arrow_reads_them(rows: list[tuple[dict[str, Any], int]]) -> None:
    same_as_arrow([_serialise(record, style) for record, style in rows])


typed = st.fixed_dictionaries(
    {},
    optional={
        "i": st.none() | st.integers(-(2**62), 2**62),
        "f": st.none() | st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**70), 2**70),
        "s": st.none() | st.text(max_size=12),
        "b": st.none() | st.booleans(),
        "ls": st.none() | st.lists(st.none() | st.text(max_size=4), max_size=4),
        "li": st.none() | st.lists(st.none() | st.integers(-(2**40), 2**40), max_size=4),
        "lf": st.none() | st.lists(st.none() | st.floats(allow_nan=False, allow_infinity=False), max_size=4),
        "lb": st.none() | st.lists(st.none() | st.booleans(), max_size=4),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(typed, st.integers(0, 2)), min_size=1, max_size=8))
def test_well_typed_records_are_taken(rows: list[tuple[dict[str, Any], int]]) -> None:
    lines = [_serialise(record, style) for record, style in rows]
    buffer = b"\n".join(lines)
    theirs = arrow(buffer, SCHEMA)
    mine = same_as_arrow(lines)
    if theirs is not None and "\\u0000" not in buffer.decode() and "\x00" not in buffer.decode():
        # Arrow reads them, so the fast path must too, except for what it leaves to Arrow on purpose:
        # \\u0000 and integers of 19 digits.
        long_ints = any(
            abs(r.get("i") or 0) >= 10**18 or any(abs(x or 0) >= 10**18 for x in r.get("li") or []) for r, _ in rows
        )
        if not long_ints:
            assert mine is not None, buffer[:300]


@settings(max_examples=300, deadline=None)
@given(st.lists(typed, min_size=1, max_size=4), st.data())
def test_damaged_records_read_as_arrow_reads_them(rows: list[dict[str, Any]], data: st.DataObject) -> None:
    lines = [_serialise(record, 0) for record in rows]
    row = data.draw(st.integers(0, len(lines) - 1))
    line = lines[row]
    at = data.draw(st.integers(0, len(line)))
    action = data.draw(st.sampled_from(["cut", "insert", "delete"]))
    if action == "cut":
        line = line[:at]
    elif action == "insert":
        line = (
            line[:at]
            + data.draw(st.sampled_from([b'"', b",", b"}", b"{", b"]", b"[", b" ", b"\\", b"1", b"-", b"e"]))
            + line[at:]
        )
    else:
        line = line[:at] + line[at + 1 :]
    lines[row] = line
    same_as_arrow(lines)


# -- in the decoder ---------------------------------------------------------------------------------


def test_the_decoder_gives_the_same_answer_with_and_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    values: list[bytes | None] = [orjson.dumps(order(i)) for i in range(2000)]
    for row in range(5, 2000, 97):
        values[row] = malformed(row)
    values[7] = b'{"id":1.5}'
    fast_format = JsonFormat(ORDER_SCHEMA)
    assert fast_format._fast is not None
    fast_decoded = fast_format.decode(values)
    monkeypatch.setenv("STREAM_ETL_FAST_JSON", "0")
    arrow_format = JsonFormat(ORDER_SCHEMA)
    assert arrow_format._fast is None
    arrow_decoded = arrow_format.decode(values)
    assert fast_decoded.table is not None and arrow_decoded.table is not None
    assert fast_decoded.table.combine_chunks().equals(arrow_decoded.table.combine_chunks())
    assert fast_decoded.failures == arrow_decoded.failures
    assert len(fast_decoded.failures) >= 20
