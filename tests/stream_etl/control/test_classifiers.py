"""Classifiers on sample records: certainty rules, built-in formats, custom grok/regex/JSON path/CSV."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from stream_etl.control.classifiers import ClassifierInfo, CustomClassifier, classify, csv_schema
from stream_etl.control.grok import Grok
from stream_etl.errors import ConfigurationError


def _custom(kind: str, **settings: object) -> CustomClassifier:
    return CustomClassifier(ClassifierInfo(name=f"my-{kind}", kind=kind, settings=settings))  # type: ignore[arg-type]


def test_json_objects_are_json_with_full_certainty() -> None:
    found = classify([b'{"a": 1}', b'{"a": 2.5, "b": "x"}', None])
    assert found is not None
    assert (found.classification, found.certainty) == ("json", 1.0)
    assert found.schema == pa.schema([("a", pa.float64()), ("b", pa.string())])


def test_csv_with_a_header_line() -> None:
    found = classify([b"id|name|score", b"1|ada|3.5", b"2|alan|4"])
    assert found is not None
    assert (found.classification, found.certainty, found.parameters) == ("csv", 0.8, {"delimiter": "|"})
    assert found.schema.names == ["id", "name", "score"]


def test_text_no_classifier_knows_is_unknown() -> None:
    assert classify([b"hello world", b"just words"]) is None


def test_confluent_avro_records_with_a_resolver() -> None:
    from stream_etl.formats.avro import confluent_frame, encode
    from stream_etl.formats.registry import DictResolver

    schema = {
        "type": "record",
        "name": "o",
        "fields": [{"name": "id", "type": "long"}, {"name": "s", "type": "string"}],
    }
    values = [confluent_frame(7, encode(schema, {"id": i, "s": "x"})) for i in range(3)]
    found = classify(values, resolver=DictResolver({7: schema}))
    assert found is not None
    assert (found.classification, found.certainty) == ("avro", 1.0)
    assert found.schema == pa.schema(
        [pa.field("id", pa.int64(), nullable=False), pa.field("s", pa.string(), nullable=False)]
    )
    assert classify(values) is None or classify(values).classification != "avro"  # type: ignore[union-attr]


def test_a_custom_classifier_at_full_certainty_wins_over_json() -> None:
    values = [json.dumps({"records": [{"id": i, "ok": True}]}).encode() for i in range(3)]
    found = classify(values, custom=[_custom("json_path", json_path="$.records[*]", classification="batch")])
    assert found is not None
    assert (found.classification, found.classifier) == ("batch", "my-json_path")
    assert found.schema == pa.schema([("id", pa.int64()), ("ok", pa.bool_())])


def test_a_custom_classifier_that_matches_some_samples_loses_to_a_certain_built_in() -> None:
    regex = _custom("regex", pattern=r"\{\"a\": (?P<n>1)\}")
    found = classify([b'{"a": 1}', b'{"a": 2}'], custom=[regex])
    assert found is not None and found.classification == "json"


def test_regex_and_csv_custom_classifiers() -> None:
    lines = [b"k=1;v=a", b"k=2;v=b"]
    found = classify(lines, custom=[_custom("regex", pattern=r"k=(?P<k>\d+);v=(?P<v>\w+)")])
    assert found is not None and found.schema == pa.schema([("k", pa.string()), ("v", pa.string())])
    found = classify(lines, custom=[_custom("csv", delimiter=";", header="absent", columns=["k", "v"])])
    assert found is not None and found.schema == pa.schema([("k", pa.string()), ("v", pa.string())])


def test_grok_patterns_types_and_custom_patterns() -> None:
    grok = Grok("%{IP:ip} %{INT:n} %{NUMBER:x:float} %{TICKET:t} %{GREEDYDATA:rest}", "TICKET [A-Z]+-%{INT}")
    assert grok.match("10.1.2.3 42 1.5 ABC-12 the rest here") == {
        "ip": "10.1.2.3",
        "n": "42",
        "x": "1.5",
        "t": "ABC-12",
        "rest": "the rest here",
    }
    assert grok.match("not an ip 42 1.5 ABC-12 x") is None
    assert grok.schema() == pa.schema(
        [("ip", pa.string()), ("n", pa.int64()), ("x", pa.float32()), ("t", pa.string()), ("rest", pa.string())]
    )
    with pytest.raises(ConfigurationError, match="NOPE"):
        Grok("%{NOPE:x}")
    with pytest.raises(ConfigurationError, match="cycle"):
        Grok("%{A:x}", "A %{B}\nB %{A}")


def test_csv_header_detection() -> None:
    assert csv_schema(["a,b", "1,2"]) == (pa.schema([("a", pa.int64()), ("b", pa.int64())]), True)
    assert csv_schema(["x,y", "p,q"]) == (pa.schema([("col0", pa.string()), ("col1", pa.string())]), False)
    assert csv_schema(["one column"]) is None
