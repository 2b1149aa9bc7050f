"""What a crawl does to the catalog, by the crawler's policies, and the record of it.

AWS Glue's ``SchemaChangePolicy``, with these semantics:

- A table found for the first time is always created (schema version 1), owned by the
  crawler (its ``crawler`` parameter).
- ``update_behavior`` for a table whose schema changed: ``update`` records a new schema
  version; ``log`` leaves the table as it is and logs the difference in the run.
- ``delete_behavior`` for what the data no longer holds, tables (owned by the crawler, under
  a target it crawled, not found) and columns (in the table, not in the data):
  ``log`` keeps them and logs them; ``delete`` drops the table or column; ``deprecate``
  keeps them and marks them: ``deprecated: true`` (and when, by which run) in the table's
  parameters, or the column in its ``deprecated_columns``. A table or column found again
  loses the mark. Column removals are schema changes, so they apply only with ``update``.
- Partitions (folders) found are registered with their locations if new; registered ones
  whose folder is gone follow the delete behavior (``deprecated: true`` in the partition's
  parameters for ``deprecate``), except with recrawl policy ``new_folders_only``.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, Field

from stream_etl.control import schemas
from stream_etl.control.catalog import Catalog, TableInfo
from stream_etl.control.crawl_targets import Crawled, Found

UpdateBehavior = Literal["update", "log"]
DeleteBehavior = Literal["log", "delete", "deprecate"]


class Changes(BaseModel):
    """A crawler run's record: what it found and what it changed (Glue's crawler metrics)."""

    tables_created: list[dict[str, Any]] = Field(default_factory=list)
    tables_updated: list[dict[str, Any]] = Field(default_factory=list)
    #: Schema differences left unapplied (update behavior ``log``).
    schema_changes_logged: list[dict[str, Any]] = Field(default_factory=list)
    tables_deprecated: list[str] = Field(default_factory=list)
    tables_deleted: list[str] = Field(default_factory=list)
    #: Tables no longer found, kept (delete behavior ``log``).
    tables_missing: list[str] = Field(default_factory=list)
    columns_deprecated: list[dict[str, Any]] = Field(default_factory=list)
    columns_missing: list[dict[str, Any]] = Field(default_factory=list)
    partitions_added: list[dict[str, Any]] = Field(default_factory=list)
    #: Registered partitions whose folder is gone, by the delete behavior.
    partitions_deleted: list[dict[str, Any]] = Field(default_factory=list)
    partitions_deprecated: list[dict[str, Any]] = Field(default_factory=list)
    partitions_missing: list[dict[str, Any]] = Field(default_factory=list)
    unclassified: list[str] = Field(default_factory=list)
    targets: list[dict[str, Any]] = Field(default_factory=list)
    run_properties: dict[str, str] = Field(default_factory=dict)
    counts: dict[str, int] = Field(default_factory=dict)

    def count(self) -> None:
        self.counts = {
            "tables_created": len(self.tables_created),
            "tables_updated": len(self.tables_updated),
            "tables_deprecated": len(self.tables_deprecated),
            "tables_deleted": len(self.tables_deleted),
            "partitions_added": len(self.partitions_added),
            "partitions_deleted": len(self.partitions_deleted),
            "schema_changes_logged": len(self.schema_changes_logged),
        }


class CatalogWriter:
    """Applies a crawl's :class:`Found` tables to ``database`` for crawler ``crawler``."""

    def __init__(
        self,
        catalog: Catalog,
        database: str,
        *,
        crawler: str,
        run_id: int,
        table_prefix: str,
        update_behavior: UpdateBehavior,
        delete_behavior: DeleteBehavior,
        changes: Changes,
    ) -> None:
        self.catalog, self.database, self.crawler, self.run_id = catalog, database, crawler, run_id
        self.prefix, self.update_behavior, self.delete_behavior = table_prefix, update_behavior, delete_behavior
        self.changes = changes
        self.seen: set[str] = set()
        self.source = f"crawler:{crawler}"

    def apply(self, found: Found) -> None:
        location = found.location.rstrip("/")  # the same location may be registered in other databases too
        current = next((t for t in self.catalog.list_tables(self.database) if t.location == location), None)
        if current is None:
            current = self._create(found)
        elif found.complete:
            self._update(current, found)
        self.seen.add(current.name)
        self._partitions(current, found)

    def _name(self, found: Found) -> str:
        name = self.prefix + found.name
        taken = {t.name for t in self.catalog.list_tables(self.database)}
        if name in taken:  # another location holds the name (Glue appends a hash too)
            name = f"{name}_{hashlib.sha1(found.location.encode()).hexdigest()[:8]}"  # noqa: S324 - a name, not security
        return name

    def _create(self, found: Found) -> TableInfo:
        parameters = {**found.parameters, "crawler": self.crawler, "certainty": round(found.certainty, 3)}
        info = self.catalog.create_table(
            self.database,
            self._name(found),
            location=found.location,
            format=found.format,
            schema=found.schema,
            partition_keys=found.partition_keys,
            parameters=parameters,
            classification=found.classification,
            source=self.source,
        )
        self.changes.tables_created.append(
            {
                "table": info.name,
                "location": info.location,
                "classification": info.classification,
                "columns": found.schema.names,
                "partition_keys": list(found.partition_keys),
            }
        )
        return info

    def _update(self, current: TableInfo, found: Found) -> None:
        old = current.arrow_schema()
        gone = [f for f in old if f.name not in found.schema.names]
        new = found.schema if self.delete_behavior == "delete" else _keep(found, gone)
        diff = schemas.diff(old, new)
        parameters: dict[str, Any] = {}
        if current.parameters.get("deprecated"):
            parameters["deprecated"] = False
        if not diff.empty and self.update_behavior == "log":
            self.changes.schema_changes_logged.append({"table": current.name, "diff": diff.model_dump()})
        elif not diff.empty:
            version = self.catalog.update_schema(self.database, current.name, new, source=self.source)
            self.changes.tables_updated.append({"table": current.name, "version": version, "diff": diff.model_dump()})
        if self.update_behavior == "update":
            names = [f.name for f in gone]
            was = list(current.parameters.get("deprecated_columns", []))
            if self.delete_behavior == "deprecate" and sorted(names) != sorted(was):
                parameters["deprecated_columns"] = sorted(names)
                if added := sorted(set(names) - set(was)):
                    self.changes.columns_deprecated.append({"table": current.name, "columns": added})
            elif self.delete_behavior == "log" and names:
                self.changes.columns_missing.append({"table": current.name, "columns": names})
        if parameters:
            self.catalog.update_table(self.database, current.name, parameters=parameters)

    def _partitions(self, current: TableInfo, found: Found) -> None:
        if list(current.partition_keys) != list(found.partition_keys) or not found.partition_keys:
            return
        known = {tuple(p.values): p for p in self.catalog.list_partitions(self.database, current.name)}
        for partition in found.partitions:
            was = known.get(partition.values)
            if was is None or was.parameters.get("deprecated"):
                self.catalog.add_partition(
                    self.database, current.name, list(partition.values), location=partition.location
                )
            if was is None:
                self.changes.partitions_added.append(
                    {"table": current.name, "values": list(partition.values), "location": partition.location}
                )
        if not found.complete:  # only new folders were listed: the others are not gone
            return
        seen = {p.values for p in found.partitions}
        for values, registered in known.items():
            if values in seen:
                continue
            record = {"table": current.name, "values": list(values), "location": registered.location}
            if self.delete_behavior == "delete":
                self.catalog.delete_partition(self.database, current.name, list(values))
                self.changes.partitions_deleted.append(record)
            elif self.delete_behavior == "deprecate" and not registered.parameters.get("deprecated"):
                mark = {**registered.parameters, "deprecated": True, "deprecated_by_run": self.run_id}
                self.catalog.add_partition(
                    self.database, current.name, list(values), location=registered.location, parameters=mark
                )
                self.changes.partitions_deprecated.append(record)
            elif self.delete_behavior == "log":
                self.changes.partitions_missing.append(record)

    def remove_missing(self, crawled: list[Crawled]) -> None:
        """Apply the delete behavior to the crawler's tables that the ``crawled`` targets cover and did not find."""
        for table in self.catalog.list_tables(self.database):
            if table.parameters.get("crawler") != self.crawler or table.name in self.seen:
                continue
            if not any(c.covers(table.location) for c in crawled):
                continue
            if self.delete_behavior == "delete":
                self.catalog.delete_table(self.database, table.name)
                self.changes.tables_deleted.append(table.name)
            elif self.delete_behavior == "deprecate":
                if not table.parameters.get("deprecated"):
                    mark = {
                        "deprecated": True,
                        "deprecated_at": datetime.now(UTC).isoformat(),
                        "deprecated_by_run": self.run_id,
                    }
                    self.catalog.update_table(self.database, table.name, parameters=mark)
                    self.changes.tables_deprecated.append(table.name)
            else:
                self.changes.tables_missing.append(table.name)


def _keep(found: Found, gone: list[pa.Field]) -> pa.Schema:
    """The found schema with the ``gone`` columns kept, before the partition keys."""
    data = [f for f in found.schema if f.name not in found.partition_keys]
    keys = [found.schema.field(k) for k in found.partition_keys]
    return pa.schema(data + gone + keys)
