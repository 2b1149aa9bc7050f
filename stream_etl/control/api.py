"""The REST API (FastAPI): catalog, connections, jobs and runs, behind bearer tokens.

``create_app(store, box)`` builds the app; `stream-etl api serve` runs it with uvicorn on
127.0.0.1. The OpenAPI spec is at ``/openapi.json`` (docs at ``/docs``). Every route but
``/health`` needs ``Authorization: Bearer <token>``: 401 without a valid token, 403 when
the token's role is too low (see :mod:`stream_etl.control.tokens` for the roles).
Connection secrets are masked in every response.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from stream_etl import __version__
from stream_etl.control import schemas
from stream_etl.control.catalog import Catalog, DatabaseInfo, PartitionInfo, SchemaVersionInfo, TableInfo
from stream_etl.control.connections import ConnectionInfo, Connections, TestResult
from stream_etl.control.errors import AlreadyExists, InvalidState, NotFound
from stream_etl.control.jobs import JobInfo, Jobs, JobSpec, RunInfo
from stream_etl.control.secrets import SecretBox
from stream_etl.control.store import Store
from stream_etl.control.tokens import Role, TokenInfo, Tokens, allows
from stream_etl.errors import ConfigurationError


class DatabaseCreate(BaseModel):
    name: str
    description: str = ""


class TableCreate(BaseModel):
    name: str
    location: str
    format: str = "delta"
    schema_: list[dict[str, Any]] = Field(alias="schema", description="Arrow schema JSON: a list of fields")
    partition_keys: list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    classification: str = ""


class PartitionCreate(BaseModel):
    values: list[str]
    location: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)


class ConnectionCreate(BaseModel):
    name: str
    kind: str
    fields: dict[str, Any]
    description: str = ""


class TokenCreate(BaseModel):
    name: str
    role: Role = "viewer"


class TokenCreated(BaseModel):
    token: str
    info: TokenInfo


@dataclass(frozen=True)
class Guards:
    """The role dependencies a route module puts in ``dependencies=[...]`` (401/403 as above)."""

    viewer: Any
    operator: Any
    admin: Any


# Route modules beside this one: each has ``add_routes(app, store, box, guards)``. Listed by
# module path so that building the app imports them and `stream-etl run` imports none of them.
ROUTE_MODULES: tuple[str, ...] = ("stream_etl.control.api_registry", "stream_etl.control.api_crawlers")


def create_app(store: Store, box: SecretBox | None) -> FastAPI:
    app = FastAPI(title="stream-etl control plane", version=__version__)
    catalog, connections, jobs, tokens = Catalog(store), Connections(store, box), Jobs(store), Tokens(store)
    bearer = HTTPBearer(auto_error=False)

    def role(needed: Role) -> Callable[..., TokenInfo]:
        def check(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> TokenInfo:  # noqa: B008
            found = tokens.verify(credentials.credentials) if credentials is not None else None
            if found is None:
                raise HTTPException(
                    status.HTTP_401_UNAUTHORIZED,
                    "a valid bearer token is required (stream-etl tokens create)",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            if not allows(found.role, needed):
                raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the {needed} role; token has {found.role}")
            return found

        return check

    viewer, operator, admin = Depends(role("viewer")), Depends(role("operator")), Depends(role("admin"))

    def _error(code: int) -> Callable[[Request, Exception], JSONResponse]:
        def handle(_request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=code)

        return handle

    app.add_exception_handler(NotFound, _error(404))
    app.add_exception_handler(AlreadyExists, _error(409))
    app.add_exception_handler(InvalidState, _error(409))
    app.add_exception_handler(ConfigurationError, _error(400))

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    # catalog --------------------------------------------------------------------------

    @app.get("/catalog/databases", tags=["catalog"], dependencies=[viewer])
    def list_databases() -> list[DatabaseInfo]:
        return catalog.list_databases()

    @app.post("/catalog/databases", tags=["catalog"], dependencies=[operator], status_code=201)
    def create_database(body: DatabaseCreate) -> DatabaseInfo:
        return catalog.create_database(body.name, description=body.description)

    @app.delete("/catalog/databases/{database}", tags=["catalog"], dependencies=[operator], status_code=204)
    def delete_database(database: str) -> None:
        catalog.delete_database(database)

    @app.get("/catalog/databases/{database}/tables", tags=["catalog"], dependencies=[viewer])
    def list_tables(database: str) -> list[TableInfo]:
        return catalog.list_tables(database)

    @app.post("/catalog/databases/{database}/tables", tags=["catalog"], dependencies=[operator], status_code=201)
    def create_table(database: str, body: TableCreate) -> TableInfo:
        return catalog.create_table(
            database,
            body.name,
            location=body.location,
            format=body.format,
            schema=schemas.schema_from_json(body.schema_),
            partition_keys=body.partition_keys,
            parameters=body.parameters,
            classification=body.classification,
            source="api",
        )

    @app.get("/catalog/databases/{database}/tables/{table}", tags=["catalog"], dependencies=[viewer])
    def get_table(database: str, table: str) -> TableInfo:
        return catalog.get_table(database, table)

    @app.delete(
        "/catalog/databases/{database}/tables/{table}", tags=["catalog"], dependencies=[operator], status_code=204
    )
    def delete_table(database: str, table: str) -> None:
        catalog.delete_table(database, table)

    @app.get("/catalog/databases/{database}/tables/{table}/versions", tags=["catalog"], dependencies=[viewer])
    def table_versions(database: str, table: str) -> list[SchemaVersionInfo]:
        return catalog.versions(database, table)

    @app.get("/catalog/databases/{database}/tables/{table}/diff", tags=["catalog"], dependencies=[viewer])
    def table_diff(database: str, table: str, old: int = 1, new: int | None = None) -> schemas.SchemaDiff:
        return catalog.diff(database, table, old, new)

    @app.get("/catalog/databases/{database}/tables/{table}/partitions", tags=["catalog"], dependencies=[viewer])
    def list_partitions(database: str, table: str) -> list[PartitionInfo]:
        return catalog.list_partitions(database, table)

    @app.post(
        "/catalog/databases/{database}/tables/{table}/partitions",
        tags=["catalog"],
        dependencies=[operator],
        status_code=201,
    )
    def add_partition(database: str, table: str, body: PartitionCreate) -> PartitionInfo:
        return catalog.add_partition(database, table, body.values, location=body.location, parameters=body.parameters)

    # connections ------------------------------------------------------------------------

    @app.get("/connections", tags=["connections"], dependencies=[viewer])
    def list_connections() -> list[ConnectionInfo]:
        return connections.list_all()

    @app.post("/connections", tags=["connections"], dependencies=[admin], status_code=201)
    def create_connection(body: ConnectionCreate) -> ConnectionInfo:
        return connections.create(body.name, body.kind, body.fields, description=body.description)

    @app.get("/connections/{name}", tags=["connections"], dependencies=[viewer])
    def get_connection(name: str) -> ConnectionInfo:
        return connections.get(name)

    @app.delete("/connections/{name}", tags=["connections"], dependencies=[admin], status_code=204)
    def delete_connection(name: str) -> None:
        connections.delete(name)

    @app.post("/connections/{name}/test", tags=["connections"], dependencies=[operator])
    def test_connection(name: str) -> TestResult:
        return connections.test(name)

    # jobs and runs ------------------------------------------------------------------------

    @app.get("/jobs", tags=["jobs"], dependencies=[viewer])
    def list_jobs() -> list[JobInfo]:
        return jobs.list_all()

    @app.post("/jobs", tags=["jobs"], dependencies=[operator], status_code=201)
    def create_job(body: JobSpec, replace: bool = False) -> JobInfo:
        return jobs.create(body, replace=replace)

    @app.get("/jobs/{name}", tags=["jobs"], dependencies=[viewer])
    def get_job(name: str) -> JobInfo:
        return jobs.get(name)

    @app.delete("/jobs/{name}", tags=["jobs"], dependencies=[operator], status_code=204)
    def delete_job(name: str) -> None:
        jobs.delete(name)

    @app.post("/jobs/{name}/runs", tags=["runs"], dependencies=[operator], status_code=201)
    def start_job(name: str) -> RunInfo:
        return jobs.start(name)

    @app.get("/runs", tags=["runs"], dependencies=[viewer])
    def list_runs(job: str | None = None, state: str | None = None, limit: int = 100) -> list[RunInfo]:
        return jobs.list_runs(job=job, state=state, limit=limit)

    @app.get("/runs/{run_id}", tags=["runs"], dependencies=[viewer])
    def get_run(run_id: int) -> RunInfo:
        return jobs.get_run(run_id)

    @app.post("/runs/{run_id}/stop", tags=["runs"], dependencies=[operator])
    def stop_run(run_id: int) -> RunInfo:
        return jobs.stop(run_id)

    # tokens ---------------------------------------------------------------------------------

    @app.get("/tokens", tags=["tokens"], dependencies=[admin])
    def list_tokens() -> list[TokenInfo]:
        return tokens.list_all()

    @app.post("/tokens", tags=["tokens"], dependencies=[admin], status_code=201)
    def create_token(body: TokenCreate) -> TokenCreated:
        token, info = tokens.create(body.name, body.role)
        return TokenCreated(token=token, info=info)

    @app.delete("/tokens/{name}", tags=["tokens"], dependencies=[admin], status_code=204)
    def revoke_token(name: str) -> None:
        tokens.revoke(name)

    guards = Guards(viewer=viewer, operator=operator, admin=admin)
    for module in ROUTE_MODULES:
        importlib.import_module(module).add_routes(app, store, box, guards)
    return app
