"""Crawlers against the real services: Kafka topics, S3 prefixes, Kinesis streams, Postgres tables."""

from __future__ import annotations

import json
from collections.abc import Callable

import pyarrow as pa
import pytest

from connectors.kafka.admin import produce
from stream_etl.control.catalog import Catalog
from stream_etl.control.crawl_targets import Target
from stream_etl.control.crawlers import Crawlers, CrawlerSpec
from stream_etl.control.errors import InvalidState, NotFound
from stream_etl.control.store import Store
from tests.services import Services


def _orders(n: int, **extra: object) -> list[bytes]:
    return [json.dumps({"id": i, "user": f"u{i % 3}", "amount": i * 1.5, **extra}).encode() for i in range(n)]


def test_kafka_json_topic_becomes_a_table(store: Store, services: Services, topic: Callable[..., str]) -> None:
    name = topic(partitions=3)
    produce(services.kafka_bootstrap, name, _orders(30))
    crawlers = Crawlers(store, environ=services.environment())
    crawlers.create(CrawlerSpec(name="c1", database="raw", targets=[Target(kind="kafka", path=name)], sample_size=5))

    run = crawlers.run("c1")

    assert run.state == "SUCCEEDED", run.error
    assert run.changes["counts"]["tables_created"] == 1
    assert run.changes["targets"][0]["sampled"] == 15  # 5 from each of the 3 partitions
    table = Catalog(store).get_table("raw", name)
    assert table.classification == "json"
    assert table.location == f"kafka://{name}"
    assert table.arrow_schema() == pa.schema([("id", pa.int64()), ("user", pa.string()), ("amount", pa.float64())])
    assert table.parameters["crawler"] == "c1"
    assert crawlers.last_run("c1") == run
    assert [r.id for r in crawlers.runs()] == [run.id]


def test_a_kafka_field_added_then_recrawled_records_a_new_version(
    store: Store, services: Services, topic: Callable[..., str]
) -> None:
    name = topic(partitions=1)
    produce(services.kafka_bootstrap, name, _orders(5))
    crawlers = Crawlers(store, environ=services.environment())
    crawlers.create(CrawlerSpec(name="c", database="raw", targets=[Target(kind="kafka", path=name)], sample_size=5))
    assert crawlers.run("c").state == "SUCCEEDED"
    produce(services.kafka_bootstrap, name, _orders(5, coupon="X1"))

    run = crawlers.run("c")

    assert run.state == "SUCCEEDED", run.error
    assert run.changes["tables_updated"] == [
        {"table": name, "version": 2, "diff": {"added": ["coupon"], "removed": [], "changed": []}}
    ]
    assert Catalog(store).get_table("raw", name).arrow_schema().names == ["id", "user", "amount", "coupon"]


def test_a_missing_topic_fails_the_run_with_the_reason(store: Store, services: Services, unique: str) -> None:
    crawlers = Crawlers(store, environ=services.environment())
    crawlers.create(CrawlerSpec(name="c", database="raw", targets=[Target(kind="kafka", path=f"none-{unique}")]))

    run = crawlers.run("c")

    assert run.state == "FAILED"
    assert f"none-{unique}" in (run.error or "")
    assert run.ended_at is not None
    with pytest.raises(NotFound):
        crawlers.run("no-such-crawler")


def test_one_run_at_a_time(store: Store) -> None:
    crawlers = Crawlers(store, environ={})
    crawlers.create(CrawlerSpec(name="c", database="raw", targets=[Target(kind="kafka", path="t")]))
    crawlers.begin("c")
    with pytest.raises(InvalidState, match="already running"):
        crawlers.run("c")
