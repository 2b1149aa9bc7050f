"""The schema registry's REST routes, and Confluent-compatible read routes.

Under ``/registry``: registries, schemas, versions, compatibility checks (viewer reads,
operator creates and registers, admin deletes). Registering an incompatible version answers
409 with ``{"detail": ..., "reasons": [...]}``.

Under ``/registry/confluent``: the read side of Confluent's Schema Registry API, so Confluent
clients and :class:`~stream_etl.formats.registry.RegistryResolver` (with a viewer
``bearer_token``) resolve schemas from here. A Confluent *subject* is
``<registry>:<schema>`` (``:`` cannot appear in names); a subject without ``:`` names a schema
in the registry ``default-registry``. Schema ids are the versions' global ids.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

from stream_etl.control.api import Guards
from stream_etl.control.compatibility import DataFormat, Mode
from stream_etl.control.errors import NotFound
from stream_etl.control.registry import (
    DEFAULT_REGISTRY,
    CompatibilityResult,
    IncompatibleSchema,
    RegistryInfo,
    SchemaInfo,
    SchemaRegistry,
    VersionInfo,
)
from stream_etl.control.secrets import SecretBox
from stream_etl.control.store import Store

CONFLUENT_MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryCreate(BaseModel):
    name: str
    description: str = ""


class SchemaCreate(BaseModel):
    name: str
    data_format: DataFormat = "AVRO"
    compatibility: Mode = "BACKWARD"
    description: str = ""
    definition: str


class Definition(BaseModel):
    definition: str


class CompatibilityCheck(BaseModel):
    definition: str
    mode: Mode | None = None


class CompatibilityChange(BaseModel):
    compatibility: Mode


def subject_of(registry: str, schema: str) -> str:
    return schema if registry == DEFAULT_REGISTRY else f"{registry}:{schema}"


def _split_subject(subject: str) -> tuple[str, str]:
    registry, sep, schema = subject.partition(":")
    return (registry, schema) if sep else (DEFAULT_REGISTRY, subject)


def _confluent_schema(found: VersionInfo) -> dict[str, Any]:
    body: dict[str, Any] = {"schema": found.definition}
    if found.data_format != "AVRO":
        body["schemaType"] = found.data_format
    return body


def add_routes(app: FastAPI, store: Store, box: SecretBox | None, guards: Guards) -> None:  # noqa: ARG001
    registry = SchemaRegistry(store)
    viewer, operator, admin = guards.viewer, guards.operator, guards.admin
    base = "/registry/registries"
    schema_path = base + "/{name}/schemas/{schema}"

    def incompatible(_request: Request, exc: Exception) -> JSONResponse:
        reasons = exc.reasons if isinstance(exc, IncompatibleSchema) else []
        return JSONResponse({"detail": str(exc), "reasons": reasons}, status_code=409)

    app.add_exception_handler(IncompatibleSchema, incompatible)

    @app.get(base, tags=["registry"], dependencies=[viewer])
    def list_registries() -> list[RegistryInfo]:
        return registry.list_registries()

    @app.post(base, tags=["registry"], dependencies=[operator], status_code=201)
    def create_registry(body: RegistryCreate) -> RegistryInfo:
        return registry.create_registry(body.name, description=body.description)

    @app.get(base + "/{name}", tags=["registry"], dependencies=[viewer])
    def get_registry(name: str) -> RegistryInfo:
        return registry.get_registry(name)

    @app.delete(base + "/{name}", tags=["registry"], dependencies=[admin], status_code=204)
    def delete_registry(name: str) -> None:
        registry.delete_registry(name)

    @app.get(base + "/{name}/schemas", tags=["registry"], dependencies=[viewer])
    def list_schemas(name: str) -> list[SchemaInfo]:
        return registry.list_schemas(name)

    @app.post(base + "/{name}/schemas", tags=["registry"], dependencies=[operator], status_code=201)
    def create_schema(name: str, body: SchemaCreate) -> VersionInfo:
        return registry.create_schema(
            name,
            body.name,
            body.definition,
            data_format=body.data_format,
            compatibility=body.compatibility,
            description=body.description,
        )

    @app.get(schema_path, tags=["registry"], dependencies=[viewer])
    def get_schema(name: str, schema: str) -> SchemaInfo:
        return registry.get_schema(name, schema)

    @app.delete(schema_path, tags=["registry"], dependencies=[admin], status_code=204)
    def delete_schema(name: str, schema: str) -> None:
        registry.delete_schema(name, schema)

    @app.put(schema_path + "/compatibility", tags=["registry"], dependencies=[operator])
    def set_compatibility(name: str, schema: str, body: CompatibilityChange) -> SchemaInfo:
        return registry.set_compatibility(name, schema, body.compatibility)

    @app.post(schema_path + "/compatibility", tags=["registry"], dependencies=[viewer])
    def check_compatibility(name: str, schema: str, body: CompatibilityCheck) -> CompatibilityResult:
        return registry.check(name, schema, body.definition, mode=body.mode)

    @app.get(schema_path + "/versions", tags=["registry"], dependencies=[viewer])
    def list_versions(name: str, schema: str) -> list[VersionInfo]:
        return registry.versions(name, schema)

    @app.post(schema_path + "/versions", tags=["registry"], dependencies=[operator])
    def register_version(name: str, schema: str, body: Definition) -> VersionInfo:
        """The new version, or the existing one with an identical definition; 409 when incompatible."""
        return registry.register(name, schema, body.definition)

    @app.get(schema_path + "/versions/{version}", tags=["registry"], dependencies=[viewer])
    def get_version(name: str, schema: str, version: str) -> VersionInfo:
        return registry.get_version(name, schema, _version_number(version))

    @app.get(schema_path + "/diff", tags=["registry"], dependencies=[viewer], response_class=PlainTextResponse)
    def diff(name: str, schema: str, old: int = 1, new: int | None = None) -> str:
        return registry.diff(name, schema, old, new)

    @app.get("/registry/schemas/ids/{schema_id}", tags=["registry"], dependencies=[viewer])
    def get_by_id(schema_id: int) -> VersionInfo:
        return registry.get_by_id(schema_id)

    # Confluent-compatible reads -----------------------------------------------------------

    confluent = "/registry/confluent"

    def confluent_json(body: Any, status_code: int = 200) -> JSONResponse:
        return JSONResponse(body, status_code=status_code, media_type=CONFLUENT_MEDIA_TYPE)

    def not_found(exc: NotFound) -> JSONResponse:
        code = {"schema id": 40403, "schema version": 40402}.get(exc.kind, 40401)
        return confluent_json({"error_code": code, "message": str(exc)}, 404)

    @app.get(confluent + "/schemas/ids/{schema_id}", tags=["registry: confluent"], dependencies=[viewer])
    def confluent_schema(schema_id: int) -> JSONResponse:
        try:
            return confluent_json(_confluent_schema(registry.get_by_id(schema_id)))
        except NotFound as exc:
            return not_found(exc)

    @app.get(confluent + "/subjects", tags=["registry: confluent"], dependencies=[viewer])
    def confluent_subjects() -> JSONResponse:
        return confluent_json([subject_of(r, s) for r, s in registry.subjects()])

    @app.get(confluent + "/subjects/{subject}/versions", tags=["registry: confluent"], dependencies=[viewer])
    def confluent_versions(subject: str) -> JSONResponse:
        try:
            return confluent_json([v.version for v in registry.versions(*_split_subject(subject))])
        except NotFound as exc:
            return not_found(exc)

    @app.get(confluent + "/subjects/{subject}/versions/{version}", tags=["registry: confluent"], dependencies=[viewer])
    def confluent_version(subject: str, version: str) -> JSONResponse:
        try:
            found = registry.get_version(*_split_subject(subject), _version_number(version))
        except NotFound as exc:
            return not_found(exc)
        return confluent_json(
            {"subject": subject, "version": found.version, "id": found.id, **_confluent_schema(found)}
        )


def _version_number(version: str) -> int | None:
    """``latest`` (or ``-1``) or a version number."""
    if version in ("latest", "-1"):
        return None
    if not version.isdigit():
        raise NotFound(kind="schema version", name=version)
    return int(version)
