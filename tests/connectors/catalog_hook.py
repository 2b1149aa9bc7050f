"""Shared by the sinks' catalog hook tests: a catalog that records what it is told, one that
always fails, and a topology run on a list of records with a catalog in its context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import text

from stream_etl import JsonFormat, Topology
from stream_etl.catalog import TableCatalog, TableCommit
from stream_etl.context import RunContext
from stream_etl.control.catalog import Catalog, TableInfo
from stream_etl.control.hook import StoreCatalog
from stream_etl.control.models import Base
from stream_etl.control.store import Store
from stream_etl.runloop import RunLoop
from stream_etl.settings import Settings
from stream_etl.sinks import Sink
from stream_etl.testing import ListSource, Record


class CountingCatalog:
    def __init__(self) -> None:
        self.commits: list[TableCommit] = []

    def table_committed(self, commit: TableCommit) -> None:
        self.commits.append(commit)


class BrokenCatalog:
    def table_committed(self, commit: TableCommit) -> None:
        raise RuntimeError("catalog down")


def run(
    records: list[Record], sink: Sink, app_id: str, catalog: TableCatalog, settings: Settings | None = None
) -> None:
    """Run ``records`` into ``sink`` until caught up, two records per batch."""
    topology = Topology("hooked", max_batch_records=2)
    topology.source(ListSource(records), format=JsonFormat()).sink(sink)
    ctx = RunContext(app_id=app_id, settings=settings or Settings(), mode="until_caught_up", catalog=catalog)
    RunLoop(topology, ctx).run()


def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'control.db'}"


def hook(tmp_path: Path) -> StoreCatalog:
    return StoreCatalog(store_url(tmp_path), "lake")


def registered(tmp_path: Path, location: str) -> tuple[TableInfo, list[Any], list[list[str]]]:
    """The table registered at ``location``, its schema versions and its partitions' values."""
    with Store.open(store_url(tmp_path)) as store:
        catalog = Catalog(store)
        table = catalog.find_table(location)
        assert table is not None, f"{location} is not in the catalog"
        versions = catalog.versions(table.database, table.name)
        partitions = [p.values for p in catalog.list_partitions(table.database, table.name)]
        return table, versions, partitions


def every_stored_value(tmp_path: Path) -> str:
    """Every row of every table of the metadata store, as one string (to look for secrets)."""
    with Store.open(store_url(tmp_path)) as store, store.engine.connect() as connection:
        return repr(
            [connection.execute(text(f"SELECT * FROM {t.name}")).fetchall() for t in Base.metadata.sorted_tables]  # noqa: S608
        )
