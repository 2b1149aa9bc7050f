"""The data catalog: databases, tables, partitions and schema versions with diffs.

A table keeps its current schema and every earlier one: ``update_schema`` records a
new version only when the schema differs (so re-registering is idempotent), and
``diff`` compares any two versions. Names are validated the same way everywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stream_etl.control import schemas
from stream_etl.control.errors import AlreadyExists, NotFound
from stream_etl.control.models import CatalogTable, Database, Partition, SchemaVersion
from stream_etl.control.store import Store
from stream_etl.errors import ConfigurationError

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,254}$")


def check_name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        msg = f"{kind} name {name!r} is not valid: use letters, digits, '_', '.' and '-'"
        raise ConfigurationError(msg)
    return name


class DatabaseInfo(BaseModel):
    name: str
    description: str
    created_at: datetime
    tables: int


class TableInfo(BaseModel):
    database: str
    name: str
    location: str
    format: str
    schema_: list[dict[str, Any]] = Field(serialization_alias="schema")
    partition_keys: list[str]
    parameters: dict[str, Any]
    classification: str
    schema_version: int
    created_at: datetime
    updated_at: datetime

    def arrow_schema(self) -> pa.Schema:
        return schemas.schema_from_json(self.schema_)


class SchemaVersionInfo(BaseModel):
    version: int
    schema_: list[dict[str, Any]] = Field(serialization_alias="schema")
    source: str
    created_at: datetime


class PartitionInfo(BaseModel):
    values: list[str]
    location: str
    parameters: dict[str, Any]
    created_at: datetime


def _table_info(row: CatalogTable) -> TableInfo:
    return TableInfo(
        database=row.database.name,
        name=row.name,
        location=row.location,
        format=row.format,
        schema_=json.loads(row.schema_json),
        partition_keys=list(row.partition_keys),
        parameters=dict(row.parameters),
        classification=row.classification,
        schema_version=row.schema_version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class Catalog:
    def __init__(self, store: Store) -> None:
        self.store = store

    # databases ------------------------------------------------------------------

    def create_database(self, name: str, *, description: str = "", exist_ok: bool = False) -> DatabaseInfo:
        check_name("database", name)
        try:
            with self.store.session() as session:
                if exist_ok and (found := self._database(session, name, missing_ok=True)) is not None:
                    return DatabaseInfo(
                        name=found.name,
                        description=found.description,
                        created_at=found.created_at,
                        tables=len(found.tables),
                    )
                row = Database(name=name, description=description)
                session.add(row)
                session.flush()
                return DatabaseInfo(name=name, description=description, created_at=row.created_at, tables=0)
        except IntegrityError as exc:
            if exist_ok:  # created by another process in between
                return self.get_database(name)
            raise AlreadyExists(kind="database", name=name) from exc

    def get_database(self, name: str) -> DatabaseInfo:
        with self.store.session() as session:
            row = self._database(session, name)
            return DatabaseInfo(
                name=row.name, description=row.description, created_at=row.created_at, tables=len(row.tables)
            )

    def list_databases(self) -> list[DatabaseInfo]:
        with self.store.session() as session:
            rows = session.scalars(select(Database).order_by(Database.name)).all()
            return [
                DatabaseInfo(name=r.name, description=r.description, created_at=r.created_at, tables=len(r.tables))
                for r in rows
            ]

    def delete_database(self, name: str) -> None:
        with self.store.session() as session:
            session.delete(self._database(session, name))

    # tables ---------------------------------------------------------------------

    def create_table(
        self,
        database: str,
        name: str,
        *,
        location: str,
        format: str,
        schema: pa.Schema,
        partition_keys: Sequence[str] = (),
        parameters: Mapping[str, Any] | None = None,
        classification: str = "",
        source: str = "",
    ) -> TableInfo:
        check_name("table", name)
        missing = [k for k in partition_keys if k not in schema.names]
        if missing:
            msg = f"partition key(s) {missing} are not columns of table {name!r}"
            raise ConfigurationError(msg)
        text = schemas.dumps(schema)
        with self.store.creating("table", f"{database}.{name}") as session:
            row = CatalogTable(
                database=self._database(session, database),
                name=name,
                location=location.rstrip("/"),
                format=format,
                schema_json=text,
                partition_keys=list(partition_keys),
                parameters=dict(parameters or {}),
                classification=classification or format,
                schema_version=1,
            )
            row.versions.append(SchemaVersion(version=1, schema_json=text, source=source))
            session.add(row)
            session.flush()
            return _table_info(row)

    def get_table(self, database: str, name: str) -> TableInfo:
        with self.store.session() as session:
            return _table_info(self._table(session, database, name))

    def find_table(self, location: str) -> TableInfo | None:
        """The table registered at ``location``, in any database."""
        with self.store.session() as session:
            row = session.scalars(select(CatalogTable).where(CatalogTable.location == location.rstrip("/"))).first()
            return _table_info(row) if row is not None else None

    def list_tables(self, database: str) -> list[TableInfo]:
        with self.store.session() as session:
            db = self._database(session, database)
            return [_table_info(t) for t in sorted(db.tables, key=lambda t: t.name)]

    def delete_table(self, database: str, name: str) -> None:
        with self.store.session() as session:
            session.delete(self._table(session, database, name))

    def update_table(
        self,
        database: str,
        name: str,
        *,
        parameters: Mapping[str, Any] | None = None,
        classification: str | None = None,
    ) -> TableInfo:
        with self.store.session() as session:
            row = self._table(session, database, name)
            if parameters is not None:
                row.parameters = {**row.parameters, **parameters}
            if classification is not None:
                row.classification = classification
            session.flush()
            return _table_info(row)

    # schema versions --------------------------------------------------------------

    def update_schema(self, database: str, name: str, schema: pa.Schema, *, source: str = "") -> int | None:
        """Record ``schema`` as the table's new version; returns it, or None when unchanged."""
        text = schemas.dumps(schema)
        with self.store.session() as session:
            row = self._table(session, database, name)
            if row.schema_json == text:
                return None
            version = row.schema_version + 1
            row.versions.append(SchemaVersion(version=version, schema_json=text, source=source))
            row.schema_json, row.schema_version = text, version
            return version

    def versions(self, database: str, name: str) -> list[SchemaVersionInfo]:
        with self.store.session() as session:
            row = self._table(session, database, name)
            return [
                SchemaVersionInfo(
                    version=v.version, schema_=json.loads(v.schema_json), source=v.source, created_at=v.created_at
                )
                for v in row.versions
            ]

    def diff(self, database: str, name: str, old: int, new: int | None = None) -> schemas.SchemaDiff:
        """What changed between schema versions ``old`` and ``new`` (default: the current one)."""
        found = {v.version: v for v in self.versions(database, name)}
        new = max(found) if new is None else new
        for version in (old, new):
            if version not in found:
                raise NotFound(kind="schema version", name=f"{database}.{name} v{version}")
        return schemas.diff(schemas.schema_from_json(found[old].schema_), schemas.schema_from_json(found[new].schema_))

    # partitions -------------------------------------------------------------------

    def add_partition(
        self,
        database: str,
        name: str,
        values: Sequence[str],
        *,
        location: str = "",
        parameters: Mapping[str, Any] | None = None,
    ) -> PartitionInfo:
        with self.store.session() as session:
            table = self._table(session, database, name)
            if len(values) != len(table.partition_keys):
                msg = f"table {database}.{name} is partitioned by {table.partition_keys}; got values {list(values)}"
                raise ConfigurationError(msg)
            key = json.dumps(list(values))
            row = session.scalars(
                select(Partition).where(Partition.table_id == table.id, Partition.values_key == key)
            ).first()
            if row is None:
                row = Partition(table=table, values_key=key, values=list(values))
                session.add(row)
            row.location = location
            row.parameters = dict(parameters or {})
            session.flush()
            return PartitionInfo(
                values=list(row.values), location=row.location, parameters=row.parameters, created_at=row.created_at
            )

    def delete_partition(self, database: str, name: str, values: Sequence[str]) -> None:
        with self.store.session() as session:
            table = self._table(session, database, name)
            key = json.dumps(list(values))
            row = session.scalars(
                select(Partition).where(Partition.table_id == table.id, Partition.values_key == key)
            ).first()
            if row is None:
                raise NotFound(kind="partition", name=f"{database}.{name} {list(values)}")
            session.delete(row)

    def list_partitions(self, database: str, name: str) -> list[PartitionInfo]:
        with self.store.session() as session:
            table = self._table(session, database, name)
            rows = sorted(table.partitions, key=lambda p: p.values_key)
            return [
                PartitionInfo(
                    values=list(p.values), location=p.location, parameters=p.parameters, created_at=p.created_at
                )
                for p in rows
            ]

    # lookups ----------------------------------------------------------------------

    @staticmethod
    def _database(session: Session, name: str, *, missing_ok: bool = False) -> Database:
        row = session.scalars(select(Database).where(Database.name == name)).first()
        if row is None and not missing_ok:
            raise NotFound(kind="database", name=name)
        return row  # type: ignore[return-value]

    def _table(self, session: Session, database: str, name: str) -> CatalogTable:
        db = self._database(session, database)
        row = session.scalars(
            select(CatalogTable).where(CatalogTable.database_id == db.id, CatalogTable.name == name)
        ).first()
        if row is None:
            raise NotFound(kind="table", name=f"{database}.{name}")
        return row
