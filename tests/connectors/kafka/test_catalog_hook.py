"""The Kafka sink registers its topic in the catalog (kafka://<topic>, the columns it
produced), records a schema version when columns appear, and never fails on the catalog."""

from __future__ import annotations

from pathlib import Path

from connectors.kafka import KafkaSink
from tests.connectors.catalog_hook import BrokenCatalog, CountingCatalog, hook, registered, run
from tests.connectors.kafka.test_sink import read_committed
from tests.services import Services


def test_the_sink_registers_its_topic_and_added_columns(services: Services, tmp_path: Path, unique: str) -> None:
    catalog = hook(tmp_path)
    location = f"kafka://{unique}"  # as a Kafka crawler names it
    first = [{"id": i, "name": f"n{i}"} for i in range(4)]
    run(first, KafkaSink(unique), unique, catalog, services.settings())
    table, versions, _ = registered(tmp_path, location)
    assert (table.database, table.name, table.format) == ("lake", unique, "json")
    assert table.arrow_schema().names == ["id", "name"]
    assert len(versions) == 1

    # A later run whose rows lack `name` and carry `score`: a topic keeps no schema, so the
    # catalog adds `score` and keeps `name`.
    run(first + [{"id": 9, "score": 1.5}], KafkaSink(unique), unique, catalog, services.settings())
    catalog.close()
    table, versions, _ = registered(tmp_path, location)
    assert table.schema_version == 2
    assert table.arrow_schema().names == ["id", "name", "score"]


def test_the_sink_tells_the_catalog_on_its_first_commit_and_new_columns(services: Services, unique: str) -> None:
    counting = CountingCatalog()
    records = [{"id": i} for i in range(6)]  # 3 commits of 2 rows
    run(records, KafkaSink(unique), unique, counting, services.settings())
    run(
        records + [{"id": 7}, {"id": 8}, {"id": 9, "extra": "e"}],
        KafkaSink(unique),
        unique,
        counting,
        services.settings(),
    )
    assert [(c.created, c.schema.names) for c in counting.commits] == [
        (True, ["id"]),  # this writer created the topic
        (False, ["id"]),  # the next run's first commit
        (False, ["id", "extra"]),
    ]
    assert all(c.partial_schema and c.format == "json" for c in counting.commits)


def test_a_failing_catalog_never_fails_the_run(services: Services, unique: str) -> None:
    run([{"id": 1}], KafkaSink(unique), unique, BrokenCatalog(), services.settings())
    assert [m.value() for m in read_committed(services, unique)] == [b'{"id":1}']
