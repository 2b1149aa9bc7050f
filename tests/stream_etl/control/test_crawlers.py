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
from tests.services import KinesisService, Services


def _orders(n: int, **extra: object) -> list[bytes]:
    return [json.dumps({"id": i, "user": f"u{i % 3}", "amount": i * 1.5, **extra}).encode() for i in range(n)]


def test_kafka_json_topic_becomes_a_table(store: Store, services: Services, topic: Callable[..., str]) -> None:
    from confluent_kafka import Producer

    name = topic(partitions=3)
    producer = Producer({"bootstrap.servers": services.kafka_bootstrap})
    for i, value in enumerate(_orders(30)):
        producer.produce(name, value, partition=i % 3)  # 10 per partition
    assert producer.flush(10) == 0
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


def _write(services: Services | None, uri: str, body: bytes) -> None:
    """A file at ``uri``: s3:// on SeaweedFS, else a local path."""
    from pathlib import Path

    from stream_etl.settings import Settings
    from stream_etl.storage import filesystem_for

    if services is None:
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        Path(uri).write_bytes(body)
        return
    fs, path = filesystem_for(uri, services.settings() if services else Settings())
    with fs.open_output_stream(path) as out:
        out.write(body)


def _lines(records: list[bytes]) -> bytes:
    return b"\n".join(records) + b"\n"


def test_s3_hive_folders_become_one_partitioned_table(store: Store, services: Services, unique: str) -> None:
    root = f"s3://{services.bucket}/{unique}/events"
    for dt in ("2026-11-20", "2026-11-21"):
        for hour in ("00", "13"):
            _write(services, f"{root}/dt={dt}/hour={hour}/part-0.json", _lines(_orders(3)))
    _write(services, f"{root}/_SUCCESS", b"")
    crawlers = Crawlers(store, environ=services.environment())
    crawlers.create(CrawlerSpec(name="c", database="lake", targets=[Target(kind="s3", path=root)]))

    run = crawlers.run("c")

    assert run.state == "SUCCEEDED", run.error
    catalog = Catalog(store)
    assert [t.name for t in catalog.list_tables("lake")] == ["events"]
    table = catalog.get_table("lake", "events")
    assert table.location == root
    assert table.classification == "json"
    assert table.partition_keys == ["dt", "hour"]
    assert table.arrow_schema() == pa.schema(
        [("id", pa.int64()), ("user", pa.string()), ("amount", pa.float64()), ("dt", pa.date32()), ("hour", pa.int64())]
    )
    partitions = [(p.values, p.location) for p in catalog.list_partitions("lake", "events")]
    assert partitions == [
        ([dt, hour], f"{root}/dt={dt}/hour={hour}") for dt in ("2026-11-20", "2026-11-21") for hour in ("00", "13")
    ]
    assert run.changes["counts"] == {
        "tables_created": 1,
        "tables_updated": 0,
        "tables_deprecated": 0,
        "tables_deleted": 0,
        "partitions_added": 4,
        "partitions_deleted": 0,
        "schema_changes_logged": 0,
    }


def test_incompatible_folders_become_separate_tables(store: Store, services: Services, unique: str) -> None:
    import io

    import pyarrow.parquet as pq

    root = f"s3://{services.bucket}/{unique}"
    _write(services, f"{root}/orders/2026/a.json", _lines(_orders(3)))
    _write(services, f"{root}/orders/2027/b.json", _lines(_orders(3, coupon="X")))
    _write(services, f"{root}/users/users.csv", b"name,age,city\nada,36,london\nalan,41,wilmslow\n")
    buffer = io.BytesIO()
    pq.write_table(pa.table({"url": ["/a"], "ms": [12]}), buffer)
    _write(services, f"{root}/clicks/part-0.parquet", buffer.getvalue())
    from cryptography.fernet import Fernet

    from stream_etl.control.connections import Connections
    from stream_etl.control.secrets import SecretBox

    box = SecretBox(Fernet.generate_key())
    fields = {"endpoint_url": services.s3_endpoint, "access_key_id": services.access_key}
    Connections(store, box).create("lake-s3", "s3", {**fields, "secret_access_key": services.secret_key})
    crawlers = Crawlers(store, box, environ={})  # S3 reached through the connection only
    target = Target(kind="s3", path=root, connection="lake-s3")
    crawlers.create(CrawlerSpec(name="c", database="lake", targets=[target], table_prefix="x_"))

    run = crawlers.run("c")

    assert run.state == "SUCCEEDED", run.error
    catalog = Catalog(store)
    tables = {t.name: t for t in catalog.list_tables("lake")}
    assert sorted(tables) == ["x_clicks", "x_orders", "x_users"]
    assert tables["x_orders"].partition_keys == ["partition_0"]
    assert tables["x_orders"].arrow_schema().names == ["id", "user", "amount", "coupon", "partition_0"]
    assert tables["x_users"].classification == "csv"
    assert tables["x_users"].arrow_schema() == pa.schema(
        [("name", pa.string()), ("age", pa.int64()), ("city", pa.string())]
    )
    assert tables["x_clicks"].arrow_schema() == pa.schema([("url", pa.string()), ("ms", pa.int64())])


def test_kinesis_csv_records_become_a_table(store: Store, kinesis: KinesisService, unique: str) -> None:
    from connectors.kinesis.admin import create_stream, kinesis_client, put_records

    client = kinesis_client(kinesis.endpoint)
    try:
        create_stream(client, unique, shards=2)
        put_records(client, unique, [f"{i},user{i},{i * 0.5}".encode() for i in range(20)])
    finally:
        client.close()
    crawlers = Crawlers(store, environ=kinesis.environment())
    crawlers.create(CrawlerSpec(name="k", database="raw", targets=[Target(kind="kinesis", path=unique)], sample_size=4))

    run = crawlers.run("k")

    assert run.state == "SUCCEEDED", run.error
    assert run.changes["targets"][0]["sampled"] == 8  # 4 from each of the 2 shards
    table = Catalog(store).get_table("raw", unique)
    assert (table.classification, table.location) == ("csv", f"kinesis://{unique}")
    assert table.arrow_schema() == pa.schema([("col0", pa.int64()), ("col1", pa.string()), ("col2", pa.float64())])


def test_postgres_tables_through_a_connection(store: Store, unique: str) -> None:
    import psycopg
    from cryptography.fernet import Fernet

    from stream_etl.control.connections import Connections
    from stream_etl.control.secrets import SecretBox
    from tests.stream_etl.control.conftest import POSTGRES

    name = f"crawl_{unique.replace('-', '_')}"
    box = SecretBox(Fernet.generate_key())
    Connections(store, box).create("pg", "postgres", {"database": POSTGRES.rsplit("/", 1)[1]})
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {name} (id bigint PRIMARY KEY, name text, price numeric(10, 2), tags text[], at timestamptz)"
        )
    try:
        crawlers = Crawlers(store, box, environ={})
        target = Target(kind="postgres", path=f"public.{name}", connection="pg")
        crawlers.create(CrawlerSpec(name="p", database="pg", targets=[target]))
        run = crawlers.run("p")
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP TABLE {name}")

    assert run.state == "SUCCEEDED", run.error
    table = Catalog(store).get_table("pg", name)
    assert table.location.endswith(f"/public.{name}")
    assert table.arrow_schema() == pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            ("name", pa.string()),
            ("price", pa.decimal128(10, 2)),
            ("tags", pa.list_(pa.string())),
            ("at", pa.timestamp("us", tz="UTC")),
        ]
    )


def test_a_delta_table_on_s3_is_read_from_its_log(store: Store, services: Services, table_uri: str) -> None:
    from deltalake import write_deltalake

    write_deltalake(table_uri, pa.table({"id": [1], "day": ["d1"]}), storage_options=services.storage_options())
    crawlers = Crawlers(store, environ=services.environment())
    crawlers.create(CrawlerSpec(name="d", database="lake", targets=[Target(kind="s3", path=table_uri)]))

    run = crawlers.run("d")

    assert run.state == "SUCCEEDED", run.error
    table = Catalog(store).get_table("lake", "table")
    assert (table.format, table.location, table.parameters["delta_version"]) == ("delta", table_uri, 0)
    assert table.arrow_schema().names == ["id", "day"]


def test_kafka_sampling_from_the_beginning_sees_the_first_records(
    store: Store, services: Services, topic: Callable[..., str]
) -> None:
    name = topic(partitions=1)
    produce(services.kafka_bootstrap, name, _orders(3) + _orders(3, coupon="X"))
    crawlers = Crawlers(store, environ=services.environment())
    target = Target(kind="kafka", path=name, options={"sample_from": "beginning"})
    crawlers.create(CrawlerSpec(name="c", database="raw", targets=[target], sample_size=3))

    run = crawlers.run("c")

    assert run.state == "SUCCEEDED", run.error
    assert Catalog(store).get_table("raw", name).arrow_schema().names == ["id", "user", "amount"]


def test_confluent_avro_records_resolved_by_the_control_planes_registry(
    store: Store, services: Services, topic: Callable[..., str]
) -> None:
    from stream_etl.control.registry import SchemaRegistry
    from stream_etl.formats.avro import confluent_frame, encode

    schema = {
        "type": "record",
        "name": "o",
        "fields": [{"name": "id", "type": "long"}, {"name": "sku", "type": "string"}],
    }
    registry = SchemaRegistry(store)
    registry.create_registry("shop")
    schema_id = registry.create_schema("shop", "orders", json.dumps(schema)).id
    name = topic(partitions=1)
    produce(
        services.kafka_bootstrap,
        name,
        [confluent_frame(schema_id, encode(schema, {"id": i, "sku": "a"})) for i in range(3)],
    )
    crawlers = Crawlers(store, environ=services.environment())
    crawlers.create(CrawlerSpec(name="c", database="raw", targets=[Target(kind="kafka", path=name)]))

    run = crawlers.run("c")

    assert run.state == "SUCCEEDED", run.error
    table = Catalog(store).get_table("raw", name)
    assert (table.classification, table.parameters["wire_format"]) == ("avro", "confluent")
    assert table.arrow_schema().names == ["id", "sku"]
