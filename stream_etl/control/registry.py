"""The schema registry (AWS Glue Schema Registry-style): registries hold schemas, a schema holds
versions 1, 2, ... of one data format (AVRO, JSON or PROTOBUF) under a compatibility mode.

Registering a version checks it against the existing ones by the schema's mode (see
:mod:`stream_etl.control.compatibility`) and refuses it with :class:`IncompatibleSchema`, whose
``reasons`` say what breaks. Registering a definition identical to an existing version (same
canonical fingerprint) returns that version. Every version has a global id, unique across
registries and never reused: the schema id of Confluent's wire format, which
:class:`~stream_etl.formats.registry.StoreResolver` (and the API's Confluent routes) resolve.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stream_etl.control import compatibility as compat
from stream_etl.control.catalog import check_name
from stream_etl.control.compatibility import DataFormat, Mode
from stream_etl.control.errors import InvalidState, NotFound
from stream_etl.control.models import utcnow
from stream_etl.control.registry_models import RegisteredSchema, RegisteredVersion, Registry
from stream_etl.control.store import Store, by_id, by_name
from stream_etl.errors import ConfigurationError

DEFAULT_REGISTRY = "default-registry"


class IncompatibleSchema(InvalidState):
    """The definition breaks the schema's compatibility mode; ``reasons`` list what breaks."""

    def __init__(self, schema: str, mode: str, reasons: Sequence[str]) -> None:
        super().__init__(f"schema {schema} ({mode}) refuses the new version: " + "; ".join(reasons))
        self.schema, self.mode, self.reasons = schema, mode, list(reasons)


class RegistryInfo(BaseModel):
    name: str
    description: str
    created_at: datetime
    schemas: int


class SchemaInfo(BaseModel):
    registry: str
    name: str
    data_format: DataFormat
    compatibility: Mode
    description: str
    latest_version: int
    created_at: datetime
    updated_at: datetime


class VersionInfo(BaseModel):
    registry: str
    schema_name: str
    data_format: DataFormat
    version: int
    #: The global id: the schema id in Confluent's wire format.
    id: int
    definition: str
    fingerprint: str
    status: str
    created_at: datetime


class CompatibilityResult(BaseModel):
    compatible: bool
    mode: Mode
    #: The versions the definition was checked against.
    checked_against: list[int]
    reasons: list[str]


def _registry_info(row: Registry) -> RegistryInfo:
    return RegistryInfo(name=row.name, description=row.description, created_at=row.created_at, schemas=len(row.schemas))


def _schema_info(row: RegisteredSchema) -> SchemaInfo:
    return SchemaInfo(
        registry=row.owner.name,
        name=row.name,
        data_format=row.data_format,  # type: ignore[arg-type]
        compatibility=row.compatibility,  # type: ignore[arg-type]
        description=row.description,
        latest_version=row.versions[-1].version if row.versions else 0,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _version_info(row: RegisteredVersion) -> VersionInfo:
    return VersionInfo(
        registry=row.schema.owner.name,
        schema_name=row.schema.name,
        data_format=row.schema.data_format,  # type: ignore[arg-type]
        version=row.version,
        id=row.id,
        definition=row.definition,
        fingerprint=row.fingerprint,
        status=row.status,
        created_at=row.created_at,
    )


def _check_choice(kind: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        msg = f"{kind} {value!r} is not one of {', '.join(choices)}"
        raise ConfigurationError(msg)
    return value


class SchemaRegistry:
    def __init__(self, store: Store) -> None:
        self.store = store

    # registries ---------------------------------------------------------------------

    def create_registry(self, name: str, *, description: str = "") -> RegistryInfo:
        check_name("registry", name)
        with self.store.creating("registry", name) as session:
            row = Registry(name=name, description=description)
            session.add(row)
            session.flush()
            return _registry_info(row)

    def get_registry(self, name: str) -> RegistryInfo:
        with self.store.session() as session:
            return _registry_info(self._registry(session, name))

    def list_registries(self) -> list[RegistryInfo]:
        with self.store.session() as session:
            return [_registry_info(r) for r in session.scalars(select(Registry).order_by(Registry.name))]

    def delete_registry(self, name: str) -> None:
        """Delete a registry with its schemas and versions (their global ids are not reused)."""
        with self.store.session() as session:
            session.delete(self._registry(session, name))

    # schemas ------------------------------------------------------------------------

    def create_schema(
        self,
        registry: str,
        name: str,
        definition: str,
        *,
        data_format: DataFormat = "AVRO",
        compatibility: Mode = "BACKWARD",
        description: str = "",
    ) -> VersionInfo:
        """Create a schema with ``definition`` as its version 1."""
        check_name("schema", name)
        _check_choice("data format", data_format, compat.DATA_FORMATS)
        _check_choice("compatibility mode", compatibility, compat.MODES)
        fingerprint, _parsed = compat.parse(data_format, definition)
        with self.store.creating("schema", f"{registry}.{name}") as session:
            row = RegisteredSchema(
                owner=self._registry(session, registry),
                name=name,
                data_format=data_format,
                compatibility=compatibility,
                description=description,
            )
            version = RegisteredVersion(version=1, definition=definition, fingerprint=fingerprint)
            row.versions.append(version)
            session.add(row)
            session.flush()
            return _version_info(version)

    def get_schema(self, registry: str, name: str) -> SchemaInfo:
        with self.store.session() as session:
            return _schema_info(self._schema(session, registry, name))

    def list_schemas(self, registry: str) -> list[SchemaInfo]:
        with self.store.session() as session:
            return [_schema_info(s) for s in sorted(self._registry(session, registry).schemas, key=lambda s: s.name)]

    def delete_schema(self, registry: str, name: str) -> None:
        with self.store.session() as session:
            session.delete(self._schema(session, registry, name))

    def set_compatibility(self, registry: str, name: str, mode: Mode) -> SchemaInfo:
        """Change the mode; it applies to versions registered from now on."""
        _check_choice("compatibility mode", mode, compat.MODES)
        with self.store.session() as session:
            row = self._schema(session, registry, name)
            row.compatibility = mode
            session.flush()
            return _schema_info(row)

    # versions -----------------------------------------------------------------------

    def register(self, registry: str, name: str, definition: str) -> VersionInfo:
        """Add ``definition`` as the schema's next version, or return the version it is identical to.

        Raises :class:`IncompatibleSchema` when the compatibility mode refuses it and
        :class:`InvalidState` when the mode is DISABLED."""
        for _attempt in range(4):
            try:
                return self._register_once(registry, name, definition)
            except IntegrityError:  # another process took the version number: check against it too
                continue
        msg = f"schema {registry}.{name}: concurrent registrations kept taking the next version number; try again"
        raise InvalidState(msg)

    def _register_once(self, registry: str, name: str, definition: str) -> VersionInfo:
        with self.store.session() as session:
            # Write first: a row lock on Postgres, the database's write lock on SQLite, so that
            # registrations of one schema take their turn instead of racing for a version number.
            session.execute(
                update(RegisteredSchema)
                .where(
                    RegisteredSchema.name == name,
                    RegisteredSchema.registry_id
                    == select(Registry.id).where(Registry.name == registry).scalar_subquery(),
                )
                .values(updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            row = self._schema(session, registry, name)
            fingerprint, parsed = compat.parse(row.data_format, definition)
            same = next((v for v in row.versions if v.fingerprint == fingerprint), None)
            if same is not None:
                return _version_info(same)
            if row.compatibility == "DISABLED":
                msg = f"schema {registry}.{name} is DISABLED: set another compatibility mode to add versions"
                raise InvalidState(msg)
            result = self._check(row, parsed)
            if not result.compatible:
                subject = f"{registry}.{name}"
                raise IncompatibleSchema(subject, row.compatibility, result.reasons)
            version = RegisteredVersion(
                version=row.versions[-1].version + 1, definition=definition, fingerprint=fingerprint
            )
            row.versions.append(version)
            session.flush()
            return _version_info(version)

    def check(self, registry: str, name: str, definition: str, *, mode: Mode | None = None) -> CompatibilityResult:
        """Whether ``definition`` could be registered (under ``mode``, default the schema's), without registering."""
        if mode is not None:
            _check_choice("compatibility mode", mode, compat.MODES)
        with self.store.session() as session:
            row = self._schema(session, registry, name)
            _fingerprint, parsed = compat.parse(row.data_format, definition)
            return self._check(row, parsed, mode)

    @staticmethod
    def _check(row: RegisteredSchema, parsed: object, mode: str | None = None) -> CompatibilityResult:
        mode = mode or row.compatibility
        by_number = {v.version: v for v in row.versions}
        numbers = compat.against(mode, sorted(by_number))
        reasons: list[str] = []
        for number in numbers:
            _fp, old = compat.parse(row.data_format, by_number[number].definition)
            reasons += compat.problems(row.data_format, mode, parsed, old, old_label=f"version {number}")
        return CompatibilityResult(
            compatible=not reasons,
            mode=mode,  # type: ignore[arg-type]
            checked_against=numbers,
            reasons=reasons,
        )

    def get_version(self, registry: str, name: str, version: int | None = None) -> VersionInfo:
        """Version ``version`` of a schema, or its latest."""
        with self.store.session() as session:
            row = self._schema(session, registry, name)
            found = (
                row.versions[-1] if version is None else next((v for v in row.versions if v.version == version), None)
            )
            if found is None:
                raise NotFound(kind="schema version", name=f"{registry}.{name} v{version}")
            return _version_info(found)

    def get_by_id(self, schema_id: int) -> VersionInfo:
        """The version with global id ``schema_id``."""
        with self.store.session() as session:
            return _version_info(by_id(session, RegisteredVersion, schema_id, kind="schema id"))

    def versions(self, registry: str, name: str) -> list[VersionInfo]:
        with self.store.session() as session:
            return [_version_info(v) for v in self._schema(session, registry, name).versions]

    def diff(self, registry: str, name: str, old: int, new: int | None = None) -> str:
        """A unified diff between the (pretty-printed) definitions of versions ``old`` and ``new``."""
        before, after = self.get_version(registry, name, old), self.get_version(registry, name, new)
        return "".join(
            difflib.unified_diff(
                _pretty(before.definition).splitlines(keepends=True),
                _pretty(after.definition).splitlines(keepends=True),
                fromfile=f"{registry}.{name} v{before.version}",
                tofile=f"{registry}.{name} v{after.version}",
            )
        )

    def subjects(self) -> list[tuple[str, str]]:
        """Every (registry, schema) pair (a schema always has a version)."""
        with self.store.session() as session:
            rows = session.execute(
                select(Registry.name, RegisteredSchema.name)
                .join(RegisteredSchema.owner)
                .order_by(Registry.name, RegisteredSchema.name)
            )
            return [(r, s) for r, s in rows]

    # lookups ------------------------------------------------------------------------

    @staticmethod
    def _registry(session: Session, name: str) -> Registry:
        return by_name(session, Registry, name, kind="registry")

    def _schema(self, session: Session, registry: str, name: str) -> RegisteredSchema:
        reg = self._registry(session, registry)
        row = session.scalars(
            select(RegisteredSchema).where(RegisteredSchema.registry_id == reg.id, RegisteredSchema.name == name)
        ).first()
        if row is None:
            raise NotFound(kind="schema", name=f"{registry}.{name}")
        return row


def _pretty(definition: str) -> str:
    try:
        return json.dumps(json.loads(definition), indent=2, sort_keys=True) + "\n"
    except json.JSONDecodeError:
        return definition if definition.endswith("\n") else definition + "\n"
