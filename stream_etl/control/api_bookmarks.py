"""REST routes for a job's bookmarks: ``GET /jobs/{name}/bookmarks`` (viewer),
``POST /jobs/{name}/bookmarks/rewind`` and ``.../reset`` (operator).

The job's table is its argument ``table`` (the orders topology's and every maintenance
job's), else the ``table`` given in the query or body. Storage and Kafka are reached with the
job's connections over the API server's environment. Moving the bookmarks of a job with an
active run is refused (409): stop the run first.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from stream_etl.control.api import Guards
from stream_etl.control.connections import Connections
from stream_etl.control.errors import InvalidState
from stream_etl.control.jobs import ACTIVE, JobInfo, Jobs
from stream_etl.control.secrets import SecretBox
from stream_etl.control.store import Store
from stream_etl.errors import ConfigurationError, PositionConflict, SinkUnavailable, SourceUnavailable
from stream_etl.settings import Settings


class Rewind(BaseModel):
    table: str | None = Field(default=None, description="the job's table URI, when its arguments do not name one")
    to_offsets: dict[str, int] | None = Field(default=None, description='next offsets: {"orders:0": 500}')
    to_timestamp: datetime | None = None
    by: int | None = Field(default=None, ge=1)


class Reset(BaseModel):
    table: str | None = None
    partitions: list[str] = Field(default_factory=list, description="TOPIC:PARTITION; empty: all")


def add_routes(app: FastAPI, store: Store, box: SecretBox | None, guards: Guards) -> None:
    from stream_etl.control import bookmarks

    jobs, connections = Jobs(store), Connections(store, box)

    def where(name: str, table: str | None, *, moving: bool) -> tuple[JobInfo, str, Settings]:
        job = jobs.get(name)
        uri = table or job.arguments.get("table")
        if not uri:
            msg = f"job {name!r} names no table in its arguments: give table=<Delta table URI>"
            raise ConfigurationError(msg)
        if moving and any(r.state in ACTIVE for r in jobs.list_runs(job=name, limit=5)):
            msg = f"job {name!r} has an active run: stop it before moving its bookmarks"
            raise InvalidState(msg)
        settings = Settings.from_environment({**os.environ, **connections.environment(job.connections)})
        return job, uri, settings

    def unavailable(exc: Exception) -> HTTPException:
        code = 409 if isinstance(exc, PositionConflict) else 503
        return HTTPException(status_code=code, detail=str(exc))

    @app.get("/jobs/{name}/bookmarks", tags=["bookmarks"], dependencies=[guards.viewer])
    def show(name: str, table: str | None = None) -> list[dict[str, Any]]:
        job, uri, settings = where(name, table, moving=False)
        try:
            return bookmarks.show(uri, settings, app_id=job.app_id or job.name)
        except (SinkUnavailable, SourceUnavailable) as exc:
            raise unavailable(exc) from exc

    @app.post("/jobs/{name}/bookmarks/rewind", tags=["bookmarks"], dependencies=[guards.operator])
    def rewind(name: str, body: Rewind) -> dict[str, Any]:
        job, uri, settings = where(name, body.table, moving=True)
        try:
            moved = bookmarks.rewind(
                uri,
                settings,
                job.app_id or job.name,
                to_offsets=body.to_offsets,
                to_timestamp=body.to_timestamp,
                by=body.by,
            )
        except (PositionConflict, SinkUnavailable, SourceUnavailable) as exc:
            raise unavailable(exc) from exc
        return moved.as_dict()

    @app.post("/jobs/{name}/bookmarks/reset", tags=["bookmarks"], dependencies=[guards.operator])
    def reset(name: str, body: Reset) -> dict[str, Any]:
        job, uri, settings = where(name, body.table, moving=True)
        try:
            moved = bookmarks.reset(uri, settings, job.app_id or job.name, partitions=body.partitions)
        except (PositionConflict, SinkUnavailable) as exc:
            raise unavailable(exc) from exc
        return moved.as_dict()
