"""JsonFormat: every raw value becomes a row with its lineage index, or a failure naming its row."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pyarrow as pa
import pytest

from stream_etl.dead_letters import Failure
from stream_etl.decode import DECODE_STEP, Decoded, JsonFormat
from stream_etl.errors import ConfigurationError
from stream_etl.records import LINEAGE
from tests.bad_input import SCHEMA as CORPUS_SCHEMA
from tests.bad_input import Case, cases

INT_SCHEMA = pa.schema([("id", pa.int64()), ("a", pa.int64())])


def _value(i: int, **extra: Any) -> bytes:
    return orjson.dumps({"id": i, **extra})


def _rows(decoded: Decoded) -> list[dict[str, Any]]:
    return decoded.table.to_pylist() if decoded.table is not None else []


def _present(row: dict[str, Any]) -> dict[str, Any]:
    """A row without its null fields (columns other values of the batch brought in)."""
    return {k: v for k, v in row.items() if v is not None}


def _assert_accounted(values: list[bytes | None], decoded: Decoded) -> None:
    """Each value is exactly one row or exactly one failure, and failures are sorted by row."""
    rows = decoded.table[LINEAGE].to_pylist() if decoded.table is not None else []
    failed = [f.row for f in decoded.failures]
    assert len(rows) == len(set(rows))
    assert len(failed) == len(set(failed))
    assert not set(rows) & set(failed)
    assert sorted(rows + failed) == list(range(len(values)))
    assert failed == sorted(failed)
    assert all(f.step == DECODE_STEP and f.error_class == "DecodeError" and f.message for f in decoded.failures)


def test_empty_batch_decodes_to_nothing() -> None:
    decoded = JsonFormat().decode([])

    assert decoded.table is None
    assert decoded.failures == []


def test_fast_path_aligns_rows_with_values() -> None:
    values = [_value(i, name=f"n{i}") for i in range(1000)]

    decoded = JsonFormat().decode(values)

    assert decoded.failures == []
    assert decoded.table is not None
    assert decoded.table.schema.field(LINEAGE).type == pa.int32()
    assert decoded.table[LINEAGE].to_pylist() == list(range(1000))
    assert decoded.table["id"].to_pylist() == list(range(1000))
    assert decoded.table["name"].to_pylist() == [f"n{i}" for i in range(1000)]


def test_inference_types_each_batch_from_its_values() -> None:
    decoded = JsonFormat().decode([b'{"a": 1, "b": "x"}', b'{"a": 2.5, "c": true}'])

    assert decoded.failures == []
    assert decoded.table is not None
    assert decoded.table.schema.field("a").type == pa.float64()
    assert decoded.table.schema.field("b").type == pa.string()
    assert decoded.table.schema.field("c").type == pa.bool_()
    assert _rows(decoded) == [
        {"a": 1.0, "b": "x", "c": None, LINEAGE: 0},
        {"a": 2.5, "b": None, "c": True, LINEAGE: 1},
    ]


def test_explicit_schema_fixes_types_even_when_values_would_infer_others() -> None:
    schema = pa.schema([("id", pa.int64()), ("amount", pa.float64()), ("ts", pa.string())])

    decoded = JsonFormat(schema).decode([b'{"id": 1, "amount": 5, "ts": "2026-01-01"}', b'{"id": 2}'])

    assert decoded.failures == []
    assert decoded.table is not None
    assert decoded.table.schema == schema.append(pa.field(LINEAGE, pa.int32()))
    assert _rows(decoded) == [
        {"id": 1, "amount": 5.0, "ts": "2026-01-01", LINEAGE: 0},
        {"id": 2, "amount": None, "ts": None, LINEAGE: 1},
    ]


def test_explicit_schema_ignores_unexpected_fields_by_default() -> None:
    decoded = JsonFormat(INT_SCHEMA).decode([_value(1, a=1, extra="x")])

    assert decoded.table is not None
    assert decoded.table.column_names == ["id", "a", LINEAGE]


def test_explicit_schema_can_infer_unexpected_fields() -> None:
    decoded = JsonFormat(INT_SCHEMA, unexpected_fields="infer").decode([_value(1, a=1, extra="x")])

    assert decoded.table is not None
    assert _rows(decoded) == [{"id": 1, "a": 1, "extra": "x", LINEAGE: 0}]


def test_explicit_schema_can_dead_letter_unexpected_fields() -> None:
    values = [_value(0, a=0), _value(1, a=1, extra="x"), _value(2, a=2)]

    decoded = JsonFormat(INT_SCHEMA, unexpected_fields="error").decode(values)

    _assert_accounted(values, decoded)
    assert [r["id"] for r in _rows(decoded)] == [0, 2]
    assert [f.row for f in decoded.failures] == [1]
    assert "unexpected field" in decoded.failures[0].message


def test_without_schema_unexpected_fields_are_always_inferred() -> None:
    assert JsonFormat(unexpected_fields="error").unexpected_fields == "infer"


# (value, decoded row or None for a failure, fragment of the failure message)
SLOW_PATH_CASES = [
    pytest.param(None, None, "tombstone", id="none-tombstone"),
    pytest.param(b"", None, "empty", id="empty"),
    pytest.param(b" \t\n ", None, "empty", id="whitespace-only"),
    pytest.param(b"[1, 2]", None, "expected a JSON object", id="top-level-array"),
    pytest.param(b"42", None, "expected a JSON object", id="top-level-scalar"),
    pytest.param(b'"text"', None, "expected a JSON object", id="top-level-string"),
    pytest.param(b'{"id": 1, "a": oops', None, "", id="invalid-json"),
    pytest.param(b'{"id": 1, "a": "\xff\xfe"}', None, "UTF-8", id="invalid-utf8"),
    pytest.param(b'{"id": 1}{"id": 2}', None, "2 JSON objects", id="two-objects-one-line"),
    pytest.param(b'{"id": 1}\n{"id": 2}', None, "invalid JSON", id="two-objects-two-lines"),
    pytest.param(b'{"id": 1, "a": 1, "a": 2}', None, "", id="duplicate-keys"),
    pytest.param(b'{"id": 1, "s": "x\ry"}', None, "control character", id="raw-cr-inside-string"),
    pytest.param(b'{\n  "id": 1,\n  "a": 5\n}', {"id": 1, "a": 5}, None, id="pretty-printed"),
    pytest.param(b'{\r\n  "id": 1,\r\n  "a": 5\r\n}\r\n', {"id": 1, "a": 5}, None, id="pretty-printed-crlf"),
    pytest.param(b'{"id": 1,\r"a": 5}', {"id": 1, "a": 5}, None, id="cr-between-tokens"),
    pytest.param(
        b'{"id": 1, "a": 5, "s": "x\\ry"}', {"id": 1, "a": 5, "s": "x\ry"}, None, id="escaped-cr-inside-string"
    ),
    pytest.param(b'  {"id": 1, "a": 5}  ', {"id": 1, "a": 5}, None, id="surrounding-spaces"),
]


@pytest.mark.parametrize(("value", "row", "message"), SLOW_PATH_CASES)
def test_one_odd_value_among_good_ones_becomes_a_row_or_a_failure_naming_it(
    value: bytes | None, row: dict[str, Any] | None, message: str | None
) -> None:
    values = [_value(0, a=10), value, _value(2, a=12)]

    decoded = JsonFormat().decode(values)

    _assert_accounted(values, decoded)
    rows = [_present(r) for r in _rows(decoded)]
    assert rows[0] == {"id": 0, "a": 10, LINEAGE: 0}
    assert rows[-1] == {"id": 2, "a": 12, LINEAGE: 2}
    if row is None:
        assert [f.row for f in decoded.failures] == [1]
        assert message in decoded.failures[0].message
    else:
        assert decoded.failures == []
        assert rows[1] == {**row, LINEAGE: 1}


@pytest.mark.parametrize(("value", "row", "message"), SLOW_PATH_CASES)
def test_one_odd_value_with_a_schema_becomes_a_row_or_a_failure_naming_it(
    value: bytes | None, row: dict[str, Any] | None, message: str | None
) -> None:
    values = [_value(0, a=10), value, _value(2, a=12)]

    decoded = JsonFormat(INT_SCHEMA).decode(values)

    _assert_accounted(values, decoded)
    rows = _rows(decoded)
    assert [r[LINEAGE] for r in rows] == ([0, 2] if row is None else [0, 1, 2])
    assert decoded.table is None or decoded.table.schema.names == ["id", "a", LINEAGE]
    if row is not None:
        assert rows[1] == {"id": row["id"], "a": row["a"], LINEAGE: 1}


@pytest.mark.parametrize(
    "value",
    [pytest.param(None, id="none"), pytest.param(b"not json", id="not-json"), pytest.param(b"[]", id="array")],
)
def test_a_batch_of_only_bad_values_has_no_table(value: bytes | None) -> None:
    decoded = JsonFormat().decode([value, value])

    assert decoded.table is None
    assert [f.row for f in decoded.failures] == [0, 1]


def test_bad_values_at_the_edges_of_the_batch() -> None:
    values = [b"oops", _value(1), _value(2), None]

    decoded = JsonFormat().decode(values)

    _assert_accounted(values, decoded)
    assert [r["id"] for r in _rows(decoded)] == [1, 2]
    assert [f.row for f in decoded.failures] == [0, 3]


def test_number_beyond_int64_fails_its_row_with_an_int64_schema() -> None:
    values = [_value(0, a=1), b'{"id": 1, "a": 99999999999999999999}', _value(2, a=3)]

    decoded = JsonFormat(INT_SCHEMA).decode(values)

    _assert_accounted(values, decoded)
    assert _rows(decoded) == [{"id": 0, "a": 1, LINEAGE: 0}, {"id": 2, "a": 3, LINEAGE: 2}]
    assert [f.row for f in decoded.failures] == [1]
    assert "99999999999999999999" in decoded.failures[0].message


def test_number_beyond_int64_without_schema_widens_the_column_to_double() -> None:
    values = [_value(0, a=1), b'{"id": 1, "a": 99999999999999999999}']

    decoded = JsonFormat().decode(values)

    assert decoded.failures == []
    assert decoded.table is not None
    assert decoded.table.schema.field("a").type == pa.float64()
    assert decoded.table["a"].to_pylist() == [1.0, 1e20]


def test_a_value_that_does_not_fit_the_schema_type_fails_its_row() -> None:
    values = [_value(0, a=1), b'{"id": 1, "a": "seven"}', _value(2, a=3)]

    decoded = JsonFormat(INT_SCHEMA).decode(values)

    _assert_accounted(values, decoded)
    assert [f.row for f in decoded.failures] == [1]


def test_type_drift_without_schema_keeps_the_first_records_types() -> None:
    values = [_value(0, a="text"), _value(1, a=1), _value(2, a=2), _value(3, a="more")]

    decoded = JsonFormat().decode(values)

    _assert_accounted(values, decoded)
    assert decoded.table is not None
    assert decoded.table.schema.field("a").type == pa.string()
    assert _rows(decoded) == [{"id": 0, "a": "text", LINEAGE: 0}, {"id": 3, "a": "more", LINEAGE: 3}]
    assert [f.row for f in decoded.failures] == [1, 2]
    assert all("type drift" in f.message for f in decoded.failures)


def test_int_and_float_values_in_one_batch_are_not_drift() -> None:
    values = [_value(0, a=1), b"oops", _value(2, a=1.5)]

    decoded = JsonFormat().decode(values)

    _assert_accounted(values, decoded)
    assert [r["a"] for r in _rows(decoded)] == [1.0, 1.5]


def test_type_drift_between_two_later_records_does_not_raise() -> None:
    values = [b'{"id": 0}', _value(1, a=1), _value(2, a="text")]

    decoded = JsonFormat().decode(values)

    _assert_accounted(values, decoded)


def test_type_drift_dead_letters_only_the_records_that_do_not_fit() -> None:
    values = [_value(0, a=1), _value(1, a=None), _value(2, a="text")]

    decoded = JsonFormat().decode(values)

    _assert_accounted(values, decoded)
    assert len(decoded.failures) == 1
    assert "type drift" in decoded.failures[0].message


@pytest.mark.parametrize("at", [0, 1, 50, 99], ids=lambda at: f"odd-record-at-{at}")
def test_type_drift_keeps_the_majoritys_types_wherever_the_odd_record_sits(at: int) -> None:
    values = [_value(i, a="text" if i == at else i) for i in range(100)]

    decoded = JsonFormat().decode(values)

    _assert_accounted(values, decoded)
    assert [f.row for f in decoded.failures] == [at]
    assert decoded.table is not None
    assert decoded.table.schema.field("a").type == pa.int64()
    assert decoded.table[LINEAGE].to_pylist() == [i for i in range(100) if i != at]


def test_an_object_split_over_two_values_is_not_joined_back() -> None:
    values = [b'{"id": 0}{"b": ', b'{"c": 2}}']

    decoded = JsonFormat().decode(values)

    _assert_accounted(values, decoded)
    assert [f.row for f in decoded.failures] == [0, 1]


def test_many_bad_values_scattered_in_a_large_batch_are_each_accounted_for() -> None:
    bad_kinds: list[bytes | None] = [
        None,
        b"",
        b"   ",
        b"[1]",
        b"7",
        b'{"id": -1, "a": oops',
        b'{"id": -1, "a": "\xff"}',
        b'{"id": -1}{"id": -2}',
        b'{"id": -1, "a": 1, "a": 2}',
        b'{"id": -1, "a": 99999999999999999999}',
        b'{"id": -1, "a": "x\ry"}',
    ]
    rng = random.Random(7)
    values: list[bytes | None] = []
    good: set[int] = set()
    for i in range(2000):
        roll = rng.random()
        if roll < 0.05:
            values.append(rng.choice(bad_kinds))
        elif roll < 0.08:
            values.append(orjson.dumps({"id": i, "a": i}, option=orjson.OPT_INDENT_2))
            good.add(i)
        else:
            values.append(_value(i, a=i))
            good.add(i)

    decoded = JsonFormat(INT_SCHEMA).decode(values)

    _assert_accounted(values, decoded)
    rows = _rows(decoded)
    assert {r[LINEAGE] for r in rows} == good
    assert all(r["id"] == r[LINEAGE] == r["a"] for r in rows)
    assert len(rows) + len(decoded.failures) == len(values)


def test_failures_are_plain_failure_records() -> None:
    decoded = JsonFormat().decode([None])

    assert decoded.failures == [
        Failure(0, DECODE_STEP, "DecodeError", "value is null (a tombstone); expected a JSON object")
    ]


def test_repr_names_schema_and_mode() -> None:
    assert repr(JsonFormat(INT_SCHEMA, unexpected_fields="error")).endswith("unexpected_fields='error')")


# The bad-input corpus (tests/bad_input.py), also run end to end in tests/e2e/test_bad_input.py.

_CORPUS = cases()
_SINK_LEVEL = {"only in case"}  # reasons the Delta sink gives, not the decoder


def _matches(expected: Any, got: Any) -> bool:
    if isinstance(expected, str) and expected in ("nan", "inf", "-inf"):
        return isinstance(got, float) and str(got) == expected
    return bool(expected == got)


@pytest.mark.parametrize("explicit", [True, False], ids=["schema", "inferred"])
@pytest.mark.parametrize("case", _CORPUS, ids=[c.name for c in _CORPUS])
def test_bad_input_corpus_case_between_good_records(case: Case, explicit: bool) -> None:
    good = orjson.dumps({"id": -1, "n": 1, "f": 0.5, "s": "g"})
    values = [good, case.value, good]

    decoded = JsonFormat(CORPUS_SCHEMA if explicit else None).decode(values)

    _assert_accounted(values, decoded)
    outcome, detail = case.with_schema if explicit else case.inferred
    failed = {f.row: f.message for f in decoded.failures}
    assert 0 not in failed and 2 not in failed, "a good neighbour was dead-lettered"
    if outcome == "written":
        assert 1 not in failed, failed.get(1)
        row = next(r for r in _rows(decoded) if r[LINEAGE] == 1)
        for name, expected in detail.items():
            assert _matches(expected, row.get(name)), (name, row.get(name))
    elif detail is not None and detail not in _SINK_LEVEL:
        assert detail in failed[1]


def test_bad_input_corpus_in_one_batch_accounts_for_every_record() -> None:
    values = [c.value for c in _CORPUS]
    for schema in (CORPUS_SCHEMA, None):
        decoded = JsonFormat(schema).decode(values)

        _assert_accounted(values, decoded)


def test_deep_nesting_is_measured_outside_strings() -> None:
    brackets_in_a_string = b'{"s": "' + b"[" * 5000 + b'"}'
    deep = b'{"a": ' + b"[" * 1001 + b"]" * 1001 + b"}"

    decoded = JsonFormat().decode([brackets_in_a_string, deep, b'{"a": ' + b"[" * 999 + b"]" * 999 + b"}"])

    assert [(f.row, "deeper than 1000" in f.message) for f in decoded.failures] == [(1, True)]


def test_max_depth_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="max_depth"):
        JsonFormat(max_depth=0)


def test_lists_that_start_with_null_decode_to_valid_whole_lists() -> None:
    # Arrow's reader alone drops the leading nulls and keeps offsets that count them (apache/arrow#51305).
    values = [b'{"a": [null, 1], "b": [null, null]}', b'{"a": [2, 3], "b": [null]}']
    for schema in (None, pa.schema([("a", pa.list_(pa.int64())), ("b", pa.list_(pa.null()))])):
        decoded = JsonFormat(schema).decode(values)

        assert decoded.table is not None
        decoded.table.validate(full=True)
        assert decoded.table.drop_columns([LINEAGE]).to_pylist() == [
            {"a": [None, 1], "b": [None, None]},
            {"a": [2, 3], "b": [None]},
        ]
