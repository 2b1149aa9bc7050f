"""The Delta sink registers its table in the catalog on creation and records schema versions."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from connectors.delta import DeltaSink
from stream_etl import JsonFormat, Topology
from stream_etl.context import RunContext
from stream_etl.control.catalog import Catalog
from stream_etl.control.hook import StoreCatalog
from stream_etl.control.store import Store
from stream_etl.runloop import RunLoop
from stream_etl.testing import ListSource, Record
from tests.connectors.catalog_hook import BrokenCatalog, CountingCatalog
from tests.services import Services


def _run(records: list[Record], uri: str, services: Services, app_id: str, catalog: object) -> None:
    topology = Topology("hooked", max_batch_records=2)
    topology.source(ListSource(records), format=JsonFormat()).sink(
        DeltaSink(uri, partition_by=["country"], storage_options=services.storage_options())
    )
    ctx = RunContext(app_id=app_id, settings=services.settings(), mode="until_caught_up", catalog=catalog)  # type: ignore[arg-type]
    RunLoop(topology, ctx).run()


def test_the_sink_registers_its_table_and_each_schema_change(
    services: Services, table_uri: str, unique: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'control.db'}"
    hook = StoreCatalog(url, "lake")
    first = [{"id": i, "country": "FR"} for i in range(6)]
    _run(first, table_uri, services, unique, hook)
    with Store.open(url) as store:
        catalog = Catalog(store)
        table = catalog.find_table(table_uri)
        assert table is not None
        assert (table.database, table.name, table.format) == ("lake", "table", "delta")
        assert table.partition_keys == ["country"]
        assert table.arrow_schema().names == ["id", "country"]
        assert table.schema_version == 1

    # Same records again (already committed) and then rows with a new column: one new version only.
    evolved = first + [{"id": 10 + i, "country": "DE", "note": "gift"} for i in range(4)]
    _run(evolved, table_uri, services, unique, hook)
    hook.close()
    with Store.open(url) as store:
        catalog = Catalog(store)
        table = catalog.get_table("lake", "table")
        assert table.schema_version == 2
        assert catalog.diff("lake", "table", 1).added == ["note"]
        assert "table version" in catalog.versions("lake", "table")[1].source


def test_the_sink_tells_the_catalog_only_on_creation_and_schema_change(
    services: Services, table_uri: str, unique: str
) -> None:
    counting = CountingCatalog()
    records = [{"id": i, "country": "FR"} for i in range(10)]  # 5 commits of 2 rows
    _run(records, table_uri, services, unique, counting)
    assert [c.created for c in counting.commits] == [True]
    assert counting.commits[0].schema.names == ["id", "country"]
    _run(records + [{"id": 99, "country": "FR", "extra": 1.5}], table_uri, services, unique, counting)
    assert [c.created for c in counting.commits] == [True, False]
    assert counting.commits[1].schema.field("extra").type == pa.float64()


def test_a_failing_catalog_never_fails_the_run(services: Services, table_uri: str, unique: str) -> None:
    _run([{"id": 1, "country": "FR"}], table_uri, services, unique, BrokenCatalog())
    from deltalake import DeltaTable

    assert DeltaTable(table_uri, storage_options=services.storage_options()).to_pyarrow_table().num_rows == 1
