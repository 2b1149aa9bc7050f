"""The catalog hook sinks call (:class:`stream_etl.catalog.TableCatalog`) over the metadata store.

A sink that creates its table registers it in ``database`` (named after the
location's last path segment, ``orders_2`` when ``orders`` is taken by another
location); a commit that evolved the schema records a new schema version. The
store is opened on the first call, so a run that never creates or evolves a
table never touches it. A commit's new partitions are added to the table when its
partition keys are the ones registered.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence

import pyarrow as pa

from stream_etl.catalog import TableCommit
from stream_etl.control.catalog import Catalog
from stream_etl.control.errors import AlreadyExists
from stream_etl.control.store import Store

log = logging.getLogger(__name__)

#: Set by the supervisor for the workers of a job with a catalog database (see ``from_environment``).
DATABASE_VARIABLE = "STREAM_ETL_CATALOG_DATABASE"
STORE_VARIABLE = "STREAM_ETL_CONTROL_DB"


def table_name(location: str) -> str:
    last = location.rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", last) or "table"


class StoreCatalog:
    def __init__(self, store_url: str | None, database: str) -> None:
        self.store_url = store_url
        self.database = database
        self._catalog: Catalog | None = None

    def _open(self) -> Catalog:
        if self._catalog is None:
            self._catalog = Catalog(Store.open(self.store_url))
            self._catalog.create_database(self.database, exist_ok=True)
        return self._catalog

    def table_committed(self, commit: TableCommit) -> None:
        catalog = self._open()
        source = f"{commit.format} sink, app {commit.app_id}, table version {commit.table_version}"
        found = catalog.find_table(commit.location)
        if found is not None:
            schema = commit.schema
            if commit.partial_schema:  # only the columns one writer saw: add them, drop none
                schema = pa.unify_schemas([found.arrow_schema(), schema])
            version = catalog.update_schema(found.database, found.name, schema, source=source)
            if version is not None:
                log.info("catalog: %s.%s has schema version %d", found.database, found.name, version)
            self._add_partitions(catalog, found.database, found.name, found.partition_keys, commit)
            return
        base = table_name(commit.location)
        for attempt in range(1, 100):
            name = base if attempt == 1 else f"{base}_{attempt}"
            try:
                catalog.create_table(
                    self.database,
                    name,
                    location=commit.location,
                    format=commit.format,
                    schema=commit.schema,
                    partition_keys=list(commit.partition_keys),
                    source=source,
                )
            except AlreadyExists:
                if catalog.find_table(commit.location) is not None:
                    return  # another worker of the job registered it first
                continue
            log.info("catalog: registered %s as %s.%s", commit.location, self.database, name)
            self._add_partitions(catalog, self.database, name, commit.partition_keys, commit)
            return

    @staticmethod
    def _add_partitions(catalog: Catalog, database: str, name: str, keys: Sequence[str], commit: TableCommit) -> None:
        if list(keys) != list(commit.partition_keys):
            return  # registered with other keys (by a crawler, say): its partitions are not ours to add
        for partition in commit.partitions:
            catalog.add_partition(database, name, list(partition.values), location=partition.location)

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.store.close()


def from_environment(environ: Mapping[str, str]) -> StoreCatalog | None:
    """The hook for ``stream-etl run`` (the CLI passes its environment) when
    ``STREAM_ETL_CATALOG_DATABASE`` is set; the store is ``STREAM_ETL_CONTROL_DB`` or the default."""
    database = environ.get(DATABASE_VARIABLE)
    if not database:
        return None
    return StoreCatalog(environ.get(STORE_VARIABLE) or None, database)
