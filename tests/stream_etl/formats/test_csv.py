from __future__ import annotations

import pyarrow as pa
import pytest

from stream_etl.errors import ConfigurationError
from stream_etl.formats import CsvFormat
from stream_etl.records import LINEAGE

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("amount", pa.float64())])


def test_a_clean_batch_is_read_in_one_pass_with_the_declared_types() -> None:
    decoded = CsvFormat(SCHEMA).decode([b"1,ana,2.5", b'2,"b,\xc3\xa9",3', b"3,,"])

    assert decoded.failures == []
    assert decoded.table is not None
    assert decoded.table.schema == SCHEMA.append(pa.field(LINEAGE, pa.int32()))
    assert decoded.table.drop_columns([LINEAGE]).to_pylist() == [
        {"id": 1, "name": "ana", "amount": 2.5},
        {"id": 2, "name": "b,é", "amount": 3.0},
        {"id": 3, "name": None, "amount": None},
    ]


def test_bad_rows_are_dead_lettered_with_a_reason_and_the_rest_keep_their_lineage() -> None:
    values = [b"1,a,2.5", b"x,b,1", None, b"4,d", b"5,\xff,1", b"", b"6,e,7"]

    decoded = CsvFormat(SCHEMA).decode(values)

    assert decoded.table is not None
    assert decoded.table.column("id").to_pylist() == [1, 6]
    assert decoded.table.column(LINEAGE).to_pylist() == [0, 6]
    reasons = {f.row: f.message for f in decoded.failures}
    assert sorted(reasons) == [1, 2, 3, 4, 5]
    assert "invalid value 'x'" in reasons[1]
    assert "tombstone" in reasons[2]
    assert "Expected 3 columns, got 2" in reasons[3]
    assert "UTF-8" in reasons[4]
    assert "empty" in reasons[5]
    assert all(f.step == "decode" for f in decoded.failures)


def test_an_unbalanced_quote_does_not_shift_rows() -> None:
    # A line break always ends a row (newlines_in_values=False), so a quote never swallows the next record.
    decoded = CsvFormat(columns=["a", "b"]).decode([b'1,"open', b'2,close"', b"3,z"])

    assert decoded.failures == []
    assert decoded.table is not None
    assert decoded.table.drop_columns([LINEAGE]).to_pylist() == [
        {"a": 1, "b": "open"},
        {"a": 2, "b": 'close"'},
        {"a": 3, "b": "z"},
    ]


def test_header_names_the_columns_and_a_header_record_is_dead_lettered_not_dropped() -> None:
    decoded = CsvFormat(header="id,name").decode([b"id,name", b"1,a", b"2,b"])

    assert decoded.table is not None
    assert decoded.table.drop_columns([LINEAGE]).to_pylist() == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    assert [(f.row, f.message) for f in decoded.failures] == [(0, "value is the CSV header line, not a data row")]


def test_inferred_types_that_conflict_between_parts_become_text() -> None:
    decoded = CsvFormat(columns=["a"]).decode([b"1", None, b"x"])

    assert decoded.table is not None
    assert decoded.table.column("a").to_pylist() == ["1", "x"]


def test_empty_batch_and_bad_configuration() -> None:
    assert CsvFormat(columns=["a"]).decode([]).table is None
    with pytest.raises(ConfigurationError, match="exactly one of"):
        CsvFormat()
    with pytest.raises(ConfigurationError, match="unique"):
        CsvFormat(columns=["a", "a"])


def test_a_quoted_line_break_stays_in_its_record_and_two_rows_in_one_record_are_refused() -> None:
    decoded = CsvFormat(columns=["a", "b"]).decode([b'1,"two\nlines"', b"2,x", b"3,y\n4,z", b"5,w"])

    assert decoded.table is not None
    assert decoded.table.drop_columns([LINEAGE]).to_pylist() == [
        {"a": 1, "b": "two\nlines"},
        {"a": 2, "b": "x"},
        {"a": 5, "b": "w"},
    ]
    assert decoded.table.column(LINEAGE).to_pylist() == [0, 1, 3]
    assert [(f.row, f.message) for f in decoded.failures] == [(2, "value holds 2 records; expected exactly one")]
