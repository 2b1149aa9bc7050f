"""The Parquet sink registers its directory in the catalog (with its Hive partitions) on the
first commit, records a schema version when columns appear, and never fails on the catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.parquet import ParquetSink, read_table
from tests.connectors.catalog_hook import BrokenCatalog, CountingCatalog, hook, registered, run
from tests.services import Services


@pytest.fixture(params=["local", "s3"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Services | None]:
    if request.param == "local":
        return str(tmp_path / "files" / "orders"), None
    services: Services = request.getfixturevalue("services")
    return f"s3://{services.bucket}/{request.getfixturevalue('unique')}/orders", services


def test_the_sink_registers_its_directory_partitions_and_schema_changes(
    where: tuple[str, Services | None], tmp_path: Path, unique: str
) -> None:
    uri, services = where
    settings = services.settings() if services else None
    catalog = hook(tmp_path)
    first = [{"id": i, "country": "FR"} for i in range(4)]
    run(first, ParquetSink(uri, partition_by=["country"]), unique, catalog, settings)
    table, versions, partitions = registered(tmp_path, uri)
    assert (table.database, table.name, table.format) == ("lake", "orders", "parquet")
    assert table.partition_keys == ["country"]
    assert table.arrow_schema().names == ["id", "country"]
    assert len(versions) == 1
    assert partitions == [["FR"]]

    evolved = first + [{"id": 10 + i, "country": "DE", "note": "gift"} for i in range(2)]
    run(evolved, ParquetSink(uri, partition_by=["country"]), unique, catalog, settings)
    catalog.close()
    table, versions, partitions = registered(tmp_path, uri)
    assert table.schema_version == 2
    assert table.arrow_schema().names == ["id", "country", "note"]
    assert sorted(partitions) == [["DE"], ["FR"]]


def test_the_sink_tells_the_catalog_only_on_creation_schema_change_and_new_partitions(
    tmp_path: Path, unique: str
) -> None:
    counting = CountingCatalog()
    uri = str(tmp_path / "orders")
    records = [{"id": i, "country": "FR"} for i in range(8)]  # 4 commits of 2 rows
    run(records, ParquetSink(uri, partition_by=["country"]), unique, counting)
    assert [(c.created, [p.values for p in c.partitions]) for c in counting.commits] == [(True, [("FR",)])]
    assert counting.commits[0].partitions[0].location == f"{uri}/country=FR"
    more = [{"id": 20, "country": "DE"}, {"id": 21, "country": "DE"}, {"id": 22, "country": "DE", "extra": 1.5}]
    run(records + more, ParquetSink(uri, partition_by=["country"]), unique, counting)
    assert [(c.created, [p.values for p in c.partitions]) for c in counting.commits[1:]] == [
        (False, [("DE",)]),  # a new partition, same columns
        (False, []),  # a new column
    ]
    assert counting.commits[-1].schema.names == ["id", "country", "extra"]


def test_a_failing_catalog_never_fails_the_run(tmp_path: Path, unique: str) -> None:
    uri = str(tmp_path / "orders")
    run([{"id": 1, "country": "FR"}], ParquetSink(uri), unique, BrokenCatalog())
    table = read_table(uri)
    assert table is not None and table.num_rows == 1
