"""KPL de-aggregation on records made by the reference aggregator (aws-kinesis-agg)."""

from __future__ import annotations

from aws_kinesis_agg.aggregator import RecordAggregator

from connectors.kinesis.kpl import MAGIC, any_aggregated, deaggregate, expand


def _aggregated(count: int, *, keys: int = 3) -> tuple[str, bytes]:
    aggregator = RecordAggregator()
    for i in range(count):
        aggregator.add_user_record(f"key-{i % keys}", b'{"i": %d}' % i)
    key, _, data = aggregator.clear_and_get().get_contents()
    return key, data


def test_user_records_and_their_keys_come_back_in_order() -> None:
    key, data = _aggregated(100)

    found = deaggregate(data, key)

    assert found is not None
    datas, keys = found
    assert datas == [b'{"i": %d}' % i for i in range(100)]
    assert keys == [f"key-{i % 3}" for i in range(100)]


def test_expand_keeps_plain_records_and_says_where_each_came_from() -> None:
    key, data = _aggregated(4)

    values, keys, origin, sub = expand([b"plain", data, b"last"], ["p", key, "l"])

    assert values == [b"plain", b'{"i": 0}', b'{"i": 1}', b'{"i": 2}', b'{"i": 3}', b"last"]
    assert keys == ["p", "key-0", "key-1", "key-2", "key-0", "l"]
    assert origin == [0, 1, 1, 1, 1, 2]
    assert sub == [0, 0, 1, 2, 3, 0]


def test_a_bad_checksum_or_a_bare_magic_keeps_the_record_whole() -> None:
    key, data = _aggregated(5)
    corrupted = data[:-1] + bytes([data[-1] ^ 1])

    assert deaggregate(corrupted, key) is None
    assert deaggregate(MAGIC + b"short", "k") is None
    assert expand([corrupted], [key])[0] == [corrupted]


def test_aggregated_records_are_found_without_false_alarms() -> None:
    _, data = _aggregated(2)

    assert any_aggregated([b"a", b"b", data])
    assert not any_aggregated([b"a", b"x" + MAGIC, b"b"])  # the magic inside a value is no record
    assert not any_aggregated([])
